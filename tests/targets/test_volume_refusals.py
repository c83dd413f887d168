"""A ``volumeName`` volume that exists but is not this instance's is refused before anything
of its app is applied, unless the host's ``allow_volumes`` matches it: a located problem
naming the setting in `diff` and `apply`, the app left as it runs (never pruned), the other
apps applied. Pure: the in-memory FakeRuntime (its ``foreign_volumes`` exist, made by
someone else), and the Swarm target over a stand-in for the manager's volume check."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from controller.desired.policy import Policy
from controller.desired.resolve import DesiredApp, resolve_app
from controller.desired.secrets import SecretStore
from controller.planning import Change, Plan
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.runtime.swarm import SwarmRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from controller.targets.swarm.target import SwarmTarget
from tests.builders import app, desired
from tests.gitutil import commit_files, make_repo

DB = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: db}}
spec:
  image: busybox:1.36
  command: [sleep, "{seconds}"]
  volumes:
    - name: data
      mountPath: /data
      volumeName: shop_data
"""
WEB = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec: {image: busybox:1.36}\n"


def _reconciler(source: GitSource, runtime: FakeRuntime, *allow: str) -> Reconciler:
    policy = Policy(allow_volumes=allow)
    return Reconciler(source, ContainerTarget(runtime), instance="t", policy=policy)


async def test_a_foreign_volume_is_refused_located_and_nothing_of_its_app_runs(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/db.yaml": DB.format(seconds=60), "apps/web.yaml": WEB})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    runtime.foreign_volumes.add("shop_data")
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        diff = await _reconciler(source, runtime).run_pass(apply=False)
        (problem,) = diff.problems
        assert (problem.file, problem.line, problem.column) == ("apps/db.yaml", 10, 19)
        assert "app db: volume shop_data: exists but" in problem.message
        assert "allow_volumes (--allow-volume)" in problem.message
        assert [c.app for c in diff.plan.changes] == ["web"]
        applied = await _reconciler(source, runtime).run_pass()
        assert [(o.app, o.ok) for o in applied.outcomes] == [("web", True)]
        assert {c.app for c in runtime.containers()} == {"web"}
        assert "shop_data" not in runtime.volumes
        granted = await _reconciler(source, runtime, "shop_*").run_pass()
        assert granted.problems == [] and [o.app for o in granted.outcomes] == ["db"]
        assert "shop_data" in runtime.volumes


async def test_a_refused_app_keeps_running_as_it_was_and_is_never_pruned(
    tmp_path: Path,
) -> None:
    """Granted once, then the grant is taken away and the app changes: the change is refused
    and the running container stays (a refusal is not a removal)."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/db.yaml": DB.format(seconds=60)})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    runtime.foreign_volumes.add("shop_data")
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        await _reconciler(source, runtime, "shop_data").run_pass()
        (before,) = runtime.containers()
        commit_files(repo, {"apps/db.yaml": DB.format(seconds=61)}, "change")
        result = await _reconciler(source, runtime).run_pass()
        assert result.outcomes == [] and len(result.problems) == 1
        assert [c.id for c in runtime.containers()] == [before.id]


async def test_a_fresh_volume_name_needs_no_grant(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/db.yaml": DB.format(seconds=60)})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        result = await _reconciler(source, runtime).run_pass()
    assert result.problems == [] and [o.ok for o in result.outcomes] == [True]
    assert "shop_data" in runtime.volumes


class _Manager:
    """The manager's volumes as `SwarmRuntime.check_volume` sees them: ``theirs_data``
    exists and is someone else's."""

    instance = "t"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def check_volume(self, name: str, *, adopt: bool = False) -> str | None:
        self.asked.append(name)
        return None if name != "theirs_data" or adopt else f"volume {name}: allow_volumes"


async def test_a_swarm_service_is_refused_a_foreign_volume_the_manager_holds() -> None:
    """A changed service whose ``volumeName`` the manager holds for someone else is refused;
    a missing one is not; a granted one, and an app the plan leaves alone, are not asked."""
    manager = _Manager()
    target = SwarmTarget(cast(SwarmRuntime, manager))
    theirs, fresh, idle = (
        _app("theirs", "theirs_data"),
        _app("fresh", "new_data"),
        _app("idle", "x"),
    )
    plan = Plan("r1", changes=tuple(Change(a, "create", ()) for a in ("theirs", "fresh")))
    refused = await target.refused(desired(theirs, fresh, idle), plan)
    assert list(refused) == ["theirs"]
    assert sorted(manager.asked) == ["new_data", "theirs_data"]
    granted = _app("theirs", "theirs_data", Policy(allow_volumes=("theirs_*",)))
    assert await target.refused(desired(granted), plan) == {}


def _app(name: str, volume: str, policy: Policy | None = None) -> DesiredApp:
    volumes = [{"name": "d", "mountPath": "/d", "volumeName": volume}]
    return resolve_app(
        app(name, volumes=volumes),
        file=f"apps/{name}.yaml",
        secrets=SecretStore(),
        context_ids={},
        policy=policy or Policy(),
    )
