"""Named volumes on the real engines (Docker and Podman): only this instance's are mounted."""

from __future__ import annotations

import contextlib

import docker
import pytest

from controller.errors import RuntimeRejected
from controller.runtime import Runtime
from controller.runtime.base import volume_name
from controller.runtime.docker import DockerRuntime

pytestmark = pytest.mark.integration


async def test_only_volumes_labelled_with_the_instance_are_mounted(
    runtime: Runtime, instance: str
) -> None:
    """A missing volume is created with the instance's label; an old bare-name volume with
    that label is kept in use; an unlabelled old one, or a scoped name held by another
    instance, is refused naming the volume."""
    if not isinstance(runtime, DockerRuntime):
        pytest.skip("ownership labels live on the engines' volumes")
    client = docker.APIClient(base_url=runtime.url, version="1.41", timeout=30)
    made = [volume_name(instance, n) for n in ("new", "old", "stray", "taken")]
    made += [f"{instance}-old", f"{instance}-stray"]
    try:
        new = volume_name(instance, "new")
        assert await runtime.ensure_volume(new, legacy=f"{instance}-none") == new
        assert client.inspect_volume(new)["Labels"] == {"trueup.instance": instance}
        assert await runtime.ensure_volume(new) == new  # already there and ours

        client.create_volume(f"{instance}-old", labels={"trueup.instance": instance})
        kept = await runtime.ensure_volume(volume_name(instance, "old"), legacy=f"{instance}-old")
        assert kept == f"{instance}-old"

        client.create_volume(f"{instance}-stray")
        with pytest.raises(RuntimeRejected, match=f"volume {instance}-stray: exists but was not"):
            await runtime.ensure_volume(volume_name(instance, "stray"), legacy=f"{instance}-stray")

        taken = volume_name(instance, "taken")
        client.create_volume(taken, labels={"trueup.instance": "someone-else"})
        with pytest.raises(RuntimeRejected, match="is owned by instance someone-else"):
            await runtime.ensure_volume(taken)
        names = {v["Name"] for v in client.volumes()["Volumes"] or []}
        assert volume_name(instance, "stray") not in names  # never an empty one beside it
        assert volume_name(instance, "old") not in names
    finally:
        for name in made:
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_volume(name, force=True)
        client.close()


async def test_a_volume_name_of_someone_else_is_mounted_only_when_granted(
    runtime: Runtime, instance: str
) -> None:
    """A `volumeName` volume made by hand, or by another instance, is refused naming the
    host's allow_volumes (`check_volume` says so without creating anything), and mounted as
    it is with ``adopt`` (the grant); a missing one is created with this instance's label."""
    if not isinstance(runtime, DockerRuntime):
        pytest.skip("ownership labels live on the engines' volumes")
    client = docker.APIClient(base_url=runtime.url, version="1.41", timeout=30)
    hand, other, fresh = (f"{instance}_{n}" for n in ("hand", "other", "fresh"))
    try:
        client.create_volume(hand)
        client.create_volume(other, labels={"trueup.instance": f"{instance}-x"})
        for name, who in ((hand, "was not created by trueup"), (other, "is owned by instance")):
            why = await runtime.check_volume(name)
            assert why is not None and f"volume {name}: exists but {who}" in why
            assert "allow_volumes (--allow-volume)" in why
            with pytest.raises(RuntimeRejected, match="allow_volumes"):
                await runtime.ensure_volume(name)
            assert await runtime.check_volume(name, adopt=True) is None
            assert await runtime.ensure_volume(name, adopt=True) == name
        assert client.inspect_volume(other)["Labels"] == {"trueup.instance": f"{instance}-x"}
        assert await runtime.check_volume(fresh) is None  # missing: nothing to refuse
        assert fresh not in {v["Name"] for v in client.volumes()["Volumes"] or []}
        assert await runtime.ensure_volume(fresh) == fresh
        assert client.inspect_volume(fresh)["Labels"] == {"trueup.instance": instance}
    finally:
        for name in (hand, other, fresh):
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_volume(name, force=True)
        client.close()
