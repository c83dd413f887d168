"""The manifest fields compose files need, in the desired stage: a volume named exactly
(``volumeName``, a compose project's ``<project>_<volume>``) and a file of inline text
(``content``, a compose ``configs: {content: ...}``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.desired.resolve import container_spec
from controller.manifests.loader import load_files
from controller.reconciler import PassResult, Reconciler
from controller.runtime.base import VolumeMount
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.builders import desired_app
from tests.gitutil import commit_files, make_repo


def test_a_volume_name_is_the_engine_volume_exactly() -> None:
    """``volumeName`` is mounted as it is, in every instance, without an old name."""
    want = desired_app(
        "db", volumes=[{"name": "pgdata", "mountPath": "/data", "volumeName": "shop_pgdata"}]
    )
    for instance in ("prod", "staging"):
        spec = container_spec(want, replica=0, instance=instance, revision="r")
        assert spec.volumes == (VolumeMount("shop_pgdata", "/data"),)


def test_a_volume_name_never_names_trueups_own_volumes() -> None:
    """``trueup-<instance>_<name>`` is trueup's scoped name: a manifest cannot name it."""
    text = (
        "apiVersion: trueup/v1\nkind: App\nmetadata: {name: db}\nspec:\n  image: busybox:1.36\n"
        "  volumes: [{name: d, mountPath: /d, volumeName: trueup-prod_data}]\n"
    )
    (problem,) = load_files({"db.yaml": text.encode()}).problems
    assert (problem.line, problem.message) == (
        6,
        "spec.volumes[0].volumeName: 'trueup-prod_data': volumes named trueup-* are trueup's "
        "own (one instance's), not to be named",
    )


MOTD = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: web}}
spec:
  image: busybox:1.36
  files:
    - {{path: /etc/motd, content: "{text}"}}
"""


def _pass(repo: Path, tmp_path: Path, runtime: FakeRuntime) -> PassResult:
    async def run() -> PassResult:
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            reconciler = Reconciler(
                source, ContainerTarget(runtime), instance="t", path="apps",
                cache_dir=tmp_path / "cache",
            )  # fmt: skip
            return await reconciler.run_pass()

    return asyncio.run(run())


def test_inline_content_is_a_file_that_rolls_when_it_changes(tmp_path: Path) -> None:
    """The container gets the text as a read-only file; the spec carries its digest; a new
    text updates the app, shown as a changed digest (not as a secret)."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": MOTD.format(text="hello")})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    first = _pass(repo, tmp_path, runtime)
    assert {c.app: c.action for c in first.plan.changes} == {"web": "create"}
    (web,) = [c.spec for c in runtime._containers.values()]
    assert [(f.path, f.data, f.mode) for f in web.files] == [("/etc/motd", b"hello", 0o444)]
    assert not _pass(repo, tmp_path, runtime).plan.changes
    commit_files(repo, {"apps/web.yaml": MOTD.format(text="bye")}, "new motd")
    rolled = _pass(repo, tmp_path, runtime)
    (change,) = rolled.plan.changes
    assert change.action == "update"
    (field,) = change.fields
    assert field.path == "files[/etc/motd]"
    assert str(field.after).startswith("(inline content)@sha256:")
    assert field.before != field.after
