"""Parsing and resolving the manifests of a big commit run off the event loop, so the
controller's other coroutines (``/healthz``, the watcher, engine events) keep being served."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import controller.manifests.loader as loader_module
import controller.reconciler as reconciler_module
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

APPS = 600


def manifest(i: int) -> str:
    return (
        f"apiVersion: trueup/v1\nkind: App\nmetadata: {{name: app-{i}, labels: {{team: t{i}}}}}\n"
        "spec:\n  image: busybox:1.36\n  command: [sleep, '3600']\n  env: {A: '1', B: two}\n"
        "  ports: [{name: http, containerPort: 8080}]\n"
    )


def blocking_until_the_loop_ticks(
    real: Callable[..., Any], in_stage: threading.Event, ticked: threading.Event
) -> Callable[..., Any]:
    """``real``, which after doing its work waits (10 s at most) until a coroutine has run on
    the event loop meanwhile: that can only happen when it does not run on the loop itself."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        in_stage.set()
        try:
            result = real(*args, **kwargs)
            ticked.wait(10)
            return result
        finally:
            in_stage.clear()

    return wrapper


@pytest.mark.parametrize("stage", ["load_files", "resolve"])
def test_a_coroutine_runs_while_a_big_commit_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """While the pass loads (or resolves) 600 apps, a ticking coroutine gets to run."""
    repo = tmp_path / "repo"
    make_repo(repo, {f"apps/app-{i}.yaml": manifest(i) for i in range(APPS)})
    in_stage, ticked = threading.Event(), threading.Event()
    module: Any = loader_module if stage == "load_files" else reconciler_module
    wrapped = blocking_until_the_loop_ticks(getattr(module, stage), in_stage, ticked)
    monkeypatch.setattr(module, stage, wrapped)

    async def run() -> int:
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                if in_stage.is_set():
                    ticked.set()
                await asyncio.sleep(0.001)

        tick = asyncio.create_task(ticker())
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
            result = await Reconciler(source, ContainerTarget(runtime), instance="t").run_pass(
                apply=False
            )
        done.set()
        await tick
        assert result.problems == []
        return len(result.plan.changes)

    assert asyncio.run(run()) == APPS
    assert ticked.is_set(), f"the event loop was blocked for the whole {stage} stage"
