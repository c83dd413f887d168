"""`ContainerTarget`: the `Target` of a container engine (Docker, Podman, the fake).

Observed with one list call; planned by `containers.plan`; applied by `containers.apply`
replica by replica; its logs are every replica's lines, merged by time (or followed live).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from controller.desired.resolve import DesiredState
from controller.planning import Plan
from controller.runtime.base import ContainerInfo, LogLine, Runtime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import ContainerObservation
from controller.targets.refusals import refused_volumes, starting_apps
from controller.targets.runner import RunSetup


class ContainerTarget:
    """Containers of one instance on one container engine."""

    def __init__(self, runtime: Runtime) -> None:
        self.engine = runtime

    async def observe(self) -> ContainerObservation:
        """Every container of the instance, from one list call."""
        return ContainerObservation(tuple(await self.engine.list()))

    async def refused(self, desired: DesiredState, plan: Plan) -> dict[str, str]:
        """Apps ``plan`` starts whose ``volumeName`` volume exists, is not this instance's and
        is not matched by ``allow_volumes`` (`Runtime.check_volume`: one inspect per such
        volume; none for an app in sync or a volume the policy allows)."""
        return await refused_volumes(desired, starting_apps(plan), self.engine.check_volume)

    def runner(self, desired: DesiredState, setup: RunSetup) -> Applier:
        return Applier(
            self.engine,
            desired,
            instance=self.engine.instance,
            read_context=setup.read_context,
            concurrency=setup.concurrency,
            routes_changed=setup.routes_changed,
            bind_paths=setup.bind_paths,
        )

    async def logs(
        self, app: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[str]:
        """Lines of every replica of ``app``, each prefixed with its replica; without
        ``follow`` merged by time, with it as they come."""
        rows = await self.engine.list()
        replicas = sorted((c for c in rows if c.app == app), key=replica_name)
        lines = self._follow(replicas, tail) if follow else self._merged(replicas, tail)
        async for line in lines:
            yield line

    async def _merged(self, replicas: list[ContainerInfo], tail: int | None) -> AsyncIterator[str]:
        lines: list[tuple[str, LogLine]] = []
        for c in replicas:
            lines += [(replica_name(c), line) async for line in self.engine.logs(c.id, tail=tail)]
        lines.sort(key=lambda item: (item[1].time is None, item[1].time or 0))
        for prefix, line in lines:
            yield f"{prefix} | {line.text}"

    async def _follow(self, replicas: list[ContainerInfo], tail: int | None) -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def pump(c: ContainerInfo) -> None:
            try:
                async for line in self.engine.logs(c.id, tail=tail, follow=True):
                    await queue.put(f"{replica_name(c)} | {line.text}")
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(pump(c)) for c in replicas]
        try:
            remaining = len(tasks)
            while remaining:
                item = await queue.get()
                if item is None:
                    remaining -= 1
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def replica_name(c: ContainerInfo) -> str:
    """How a replica is named in log prefixes: ``app-<index>`` (else the container name)."""
    return f"{c.app}-{c.replica}" if c.app and c.replica is not None else c.name
