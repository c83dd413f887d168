"""A pass observes the engine while it reads git and desires the state: the two do not depend
on each other, so a pass takes the longer of the two, not their sum."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

MANIFEST = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec: {image: busybox:1.36}\n"


def test_the_engine_is_listed_while_git_is_read(tmp_path: Path) -> None:
    """Reading the branch waits until the engine's list call is in flight: it is at once (it
    would wait the whole 5 s if the pass listed only after reading git)."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": MANIFEST})
    listing = threading.Event()
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    real_list = runtime.list

    async def list_containers() -> Any:
        listing.set()
        return await real_list()

    runtime.list = list_containers  # type: ignore[method-assign]

    async def run() -> bool:
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            real_resolve = source.resolve
            overlapped: list[bool] = []

            def resolve(rev: str | None) -> Any:
                overlapped.append(listing.wait(5))
                return real_resolve(rev)

            source.resolve = resolve  # type: ignore[method-assign,assignment]
            result = await Reconciler(source, ContainerTarget(runtime), instance="t").run_pass(
                apply=False
            )
        assert [c.app for c in result.plan.changes] == ["web"]
        return overlapped == [True]

    assert asyncio.run(run())
