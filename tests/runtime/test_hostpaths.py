"""Bind paths are resolved on the controller's host before the engine sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.errors import RuntimeRejected
from controller.runtime.base import BindMount
from controller.runtime.docker import DockerRuntime
from controller.runtime.hostpaths import resolve_bind


def test_symlinks_are_followed_and_must_stay_within(tmp_path: Path) -> None:
    """A link leading out (to /etc, or up with ..) is refused; one leading to another place
    inside the allowed path resolves to it; a path not there yet resolves as written."""
    root = tmp_path / "data"
    (root / "real").mkdir(parents=True)
    (root / "out").symlink_to("/etc")
    (root / "up").symlink_to("..")
    (root / "in").symlink_to(root / "real")
    for escape in ("out", "out/passwd", "up", "up/data-evil"):
        with pytest.raises(RuntimeRejected, match="through a symlink, outside the allowed"):
            resolve_bind(str(root / escape), str(root), local=True)
    assert resolve_bind(str(root / "in"), str(root), local=True) == str((root / "real").resolve())
    assert resolve_bind(str(root / "new" / "dir"), str(root), local=True) == str(
        root.resolve() / "new" / "dir"
    )


def test_an_allowed_path_that_is_itself_a_link_is_resolved_too(tmp_path: Path) -> None:
    """``--allow-bind /srv/data`` where /srv/data is a link to a disk: binds below it are fine."""
    disk = tmp_path / "disk"
    (disk / "app").mkdir(parents=True)
    (tmp_path / "data").symlink_to(disk)
    got = resolve_bind(str(tmp_path / "data" / "app"), str(tmp_path / "data"), local=True)
    assert got == str((disk / "app").resolve())


def test_a_missing_allowed_path_cannot_be_checked(tmp_path: Path) -> None:
    """When the allowed path is not on the controller's host (trueup in a container that does
    not see it), nothing can be resolved there: refused, naming why."""
    with pytest.raises(RuntimeRejected, match="is not a directory on the controller's host"):
        resolve_bind(str(tmp_path / "gone" / "x"), str(tmp_path / "gone"), local=True)


def test_a_remote_engine_refuses_binds(tmp_path: Path) -> None:
    """An engine behind tcp:// resolves paths on a host the controller cannot see: a bind with
    an allowed path is refused there before any request is made."""
    runtime = DockerRuntime("tcp://127.0.0.1:1", instance="t")
    bind = BindMount(str(tmp_path), "/mnt", within=str(tmp_path))
    with pytest.raises(RuntimeRejected, match="not on this host"):
        runtime._resolved_bind(bind)
    local = DockerRuntime("unix:///var/run/docker.sock", instance="t")
    assert local._resolved_bind(bind).host_path == str(tmp_path.resolve())


def test_each_bind_carries_the_allowed_path_it_was_admitted_under() -> None:
    """The longest allowed path that holds the bind as written is the one it must stay in."""
    from controller.desired.policy import Policy
    from controller.desired.resolve import container_spec, resolve_app
    from controller.desired.secrets import SecretStore
    from tests.builders import app

    roots = ("/srv", "/srv/data")
    manifest = app("web", binds=[{"hostPath": "/srv/data/x", "mountPath": "/x"}])
    want = resolve_app(
        manifest,
        file="apps/web.yaml",
        secrets=SecretStore(),
        context_ids={},
        policy=Policy(allowed_bind_paths=roots),
    )
    spec = container_spec(want, replica=0, instance="i", revision="r", bind_paths=roots)
    assert spec.binds == (BindMount("/srv/data/x", "/x", within="/srv/data"),)
    alone = container_spec(want, replica=0, instance="i", revision="r")
    assert alone.binds[0].within == "/srv/data/x"  # no policy given: the path itself


def test_swarm_binds_carry_the_allowed_path_too() -> None:
    """The Swarm service spec's binds are checked the same way (on the manager's host)."""
    from controller.desired.policy import Policy
    from controller.desired.resolve import resolve_app
    from controller.desired.secrets import SecretStore
    from controller.targets.swarm.plan import service_spec
    from tests.builders import app

    want = resolve_app(
        app("web", binds=[{"hostPath": "/srv/data/x", "mountPath": "/x"}]),
        file="apps/web.yaml",
        secrets=SecretStore(),
        context_ids={},
        policy=Policy(allowed_bind_paths=("/srv/data",)),
    )
    spec = service_spec(want, instance="i", revision=None, bind_paths=("/srv/data",))
    assert spec.binds == (BindMount("/srv/data/x", "/x", within="/srv/data"),)
