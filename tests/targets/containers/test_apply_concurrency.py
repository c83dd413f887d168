"""Apply's concurrency bound limits engine work, not waiting: readiness waits overlap."""

from __future__ import annotations

import asyncio
import time

from controller.runtime.base import ContainerInfo, ContainerSpec
from controller.runtime.fake import FakeRuntime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import desired, desired_app


class SlowStartRuntime(FakeRuntime):
    """A fake engine whose create and start take a while, recording how many overlap."""

    def __init__(self) -> None:
        super().__init__(instance="test", images=["busybox:1.36"])
        self.busy = 0
        self.most_busy = 0
        self.events: list[tuple[str, str]] = []  # (operation, app), in the order they ran

    async def _work(self) -> None:
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        await asyncio.sleep(0.01)
        self.busy -= 1

    async def create(self, spec: ContainerSpec) -> str:
        await self._work()
        self.events.append(("create", spec.labels["trueup.app"]))
        return await super().create(spec)

    async def inspect(self, container: str) -> ContainerInfo:
        info = await super().inspect(container)
        self.events.append(("inspect", info.labels["trueup.app"]))
        return info

    async def start(self, container: str) -> None:
        await self._work()
        await super().start(container)


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


async def test_settle_waits_overlap_while_engine_work_stays_bounded() -> None:
    """Six apps, two slots, a 0.3 s settle each: the settles overlap (well under 3 × 0.3 s)
    and no more than two creates/starts ever run at once."""
    runtime = SlowStartRuntime()
    state = desired(*(desired_app(f"app{i}") for i in range(6)))
    plan = make_plan(state, observe(await runtime.list()))
    applier = Applier(
        runtime, state, instance="test", read_context=_no_context, concurrency=2, settle_s=0.3
    )
    started = time.monotonic()
    outcomes = await applier.run(plan)
    elapsed = time.monotonic() - started
    assert [o.ok for o in outcomes] == [True] * 6
    assert runtime.most_busy <= 2
    assert elapsed < 0.8, f"settle waits did not overlap: {elapsed:.2f}s"
    assert make_plan(state, observe(await runtime.list())).in_sync


async def test_a_ready_app_finishes_before_the_queue_drains() -> None:
    """One slot and thirty apps queued behind ``db``: once ``db`` has settled, its readiness
    check goes ahead of the queue (with a plain semaphore it came after every queued app's
    create and start, and so did everything waiting for ``db``)."""
    runtime = SlowStartRuntime()
    others = [desired_app(f"other{i:02}") for i in range(30)]
    state = desired(desired_app("db"), *others)
    plan = make_plan(state, observe(await runtime.list()))
    applier = Applier(
        runtime, state, instance="test", read_context=_no_context, concurrency=1, settle_s=0.05
    )
    assert all(o.ok for o in await applier.run(plan))
    db_ready = runtime.events.index(("inspect", "db"))
    last_create = max(i for i, (op, app) in enumerate(runtime.events) if op == "create")
    assert db_ready < last_create, runtime.events
