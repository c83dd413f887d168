"""The host's compose inputs are read on every pass: a changed variable in
``<compose_vars_dir>/<project>.env`` re-plans although the commit is the same (through the
in-memory parse cache and the desired-state cache alike), and a compose project deploys
beside manifests through the same pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.reconciler import PassResult, Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.source.hostvars import ComposeHost
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

COMPOSE = """\
services:
  web:
    image: busybox:1.36
    command: ["sleep", "3600"]
    environment:
      - LEVEL=${LEVEL}
"""
API = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: api}\nspec: {image: busybox:1.36}\n"


def _changes(result: PassResult) -> dict[str, str]:
    return {c.app: c.action for c in result.plan.changes}


def test_a_changed_host_variable_replans_the_project(tmp_path: Path) -> None:
    """Same commit, new host variable: the app is updated (field spec.env.LEVEL), by the
    running reconciler and by a fresh one restoring the desired-state cache."""
    repo = tmp_path / "repo"
    make_repo(repo, {"shop/compose.yaml": COMPOSE, "apps/api.yaml": API})
    variables = tmp_path / "vars"
    variables.mkdir()
    (variables / "shop.env").write_text("LEVEL=info\n")
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    cache = tmp_path / "cache"
    host = ComposeHost(vars_dir=variables)

    async def run() -> list[PassResult]:
        results = []
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            target = ContainerTarget(runtime)
            rec = Reconciler(source, target, instance="t", cache_dir=cache, compose=host)
            results.append(await rec.run_pass())
            results.append(await rec.run_pass())
            (variables / "shop.env").write_text("LEVEL=debug\n")
            results.append(await rec.run_pass(apply=False))
            fresh = Reconciler(source, target, instance="t", cache_dir=cache, compose=host)
            results.append(await fresh.run_pass())
            (variables / "shop.env").write_text("LEVEL=\n")
            results.append(await fresh.run_pass(apply=False))
        return results

    first, same, changed, restored, emptied = asyncio.run(run())
    assert _changes(first) == {"api": "create", "shop-web": "create"} and not first.problems
    assert same.plan.in_sync
    assert _changes(changed) == {"shop-web": "update"}
    (change,) = changed.plan.changes
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.env.LEVEL", "info", "debug")
    ]
    assert _changes(restored) == {"shop-web": "update"}
    envs = [c.spec.env for c in runtime._containers.values() if "shop-web" in c.spec.name]
    assert envs == [{"LEVEL": "debug"}]
    assert _changes(emptied) == {"shop-web": "update"}


def test_without_a_host_variable_the_project_fails_alone(tmp_path: Path) -> None:
    """``${LEVEL}`` unset (no .env, no host file) is a located error of the compose file;
    the manifest beside it applies and pruning is suspended."""
    repo = tmp_path / "repo"
    make_repo(repo, {"shop/compose.yaml": COMPOSE, "apps/api.yaml": API})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])

    async def run() -> PassResult:
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            rec = Reconciler(source, ContainerTarget(runtime), instance="t")
            return await rec.run_pass()

    result = asyncio.run(run())
    assert [(p.file, p.line) for p in result.problems] == [("shop/compose.yaml", 6)]
    assert "LEVEL" in result.problems[0].message
    assert _changes(result) == {"api": "create"}
    assert result.desired is not None and result.desired.load_failed
