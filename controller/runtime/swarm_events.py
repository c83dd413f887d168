"""What `SwarmRuntime.events` is made of: Swarm sends no task events, so the running tasks of
an instance are compared between polls (`running_tasks`), and that poll and the engine's
service events are read as one stream (`merge_streams`). Pure but for asyncio; no docker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from controller.runtime.base import RuntimeEvent
from controller.runtime.swarm_base import SwarmSnapshot, task_address


def running_tasks(snapshot: SwarmSnapshot) -> dict[str, frozenset[tuple[str, str]]]:
    """App → (task id, address) of each of its tasks that runs and is meant to."""
    out: dict[str, set[tuple[str, str]]] = {}
    for service in snapshot.services:
        if not service.app:
            continue
        mine = out.setdefault(service.app, set())
        for task in snapshot.tasks_of(service.id):
            if task.state == "running" and task.desired_state == "running":
                mine.add((task.id, task_address(service, task) or ""))
    return {app: frozenset(tasks) for app, tasks in out.items()}


async def merge_streams(*streams: AsyncIterator[RuntimeEvent]) -> AsyncIterator[RuntimeEvent]:
    """The items of ``streams`` as they come; ends (or raises) when the first one does."""
    queue: asyncio.Queue[tuple[RuntimeEvent | None, BaseException | None]] = asyncio.Queue()

    async def drain(stream: AsyncIterator[RuntimeEvent]) -> None:
        try:
            async for item in stream:
                await queue.put((item, None))
            await queue.put((None, None))
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put((None, exc))

    tasks = [asyncio.create_task(drain(s)) for s in streams]
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is None:
                return
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
