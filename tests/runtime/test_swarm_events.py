"""The pieces of the Swarm event stream: the running-task view a poll compares, and the
merge of the task poll with the engine's service events. Pure, no engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from controller import labels as L
from controller.errors import RuntimeUnavailable
from controller.runtime.base import RuntimeEvent
from controller.runtime.swarm_base import ServiceInfo, SwarmSnapshot, TaskInfo
from controller.runtime.swarm_events import merge_streams, running_tasks
from tests.builders import T0


def _task(tid: str, state: str, desired: str, address: str) -> TaskInfo:
    return TaskInfo(
        id=tid,
        service_id="s1",
        slot=1,
        node_id="n",
        state=state,
        desired_state=desired,
        message="",
        error="",
        timestamp=T0 + timedelta(seconds=1),
        addresses={"trueup-i": address},
    )


def test_running_tasks_are_those_that_run_and_are_meant_to() -> None:
    """A task Swarm retires (desired shutdown) or has not started yet is not in the view; a
    moved task changes it (new id, new address)."""
    service = ServiceInfo("s1", "i-web", {L.INSTANCE: "i", L.APP: "web"}, "img", 2, 1)
    tasks = (
        _task("a", "running", "running", "10.0.0.2"),
        _task("b", "running", "shutdown", "10.0.0.3"),
        _task("c", "pending", "running", "10.0.0.4"),
    )
    assert running_tasks(SwarmSnapshot((service,), tasks)) == {
        "web": frozenset({("a", "10.0.0.2")})
    }
    moved = (*tasks[:2], _task("c", "running", "running", "10.0.0.4"))
    assert running_tasks(SwarmSnapshot((service,), moved))["web"] == {
        ("a", "10.0.0.2"),
        ("c", "10.0.0.4"),
    }


def _event(name: str) -> RuntimeEvent:
    return RuntimeEvent(kind="tasks_changed", container_id="", name=name, labels={}, time=T0)


async def _events(
    *names: str, fail: bool = False, pause: float = 0.0
) -> AsyncIterator[RuntimeEvent]:
    for name in names:
        await asyncio.sleep(pause)
        yield _event(name)
    if fail:
        raise RuntimeUnavailable("engine gone")
    await asyncio.sleep(3600)


async def test_merged_streams_yield_both_and_fail_with_the_first_failure() -> None:
    """Events of both streams come through; when one stream fails, the merged one raises its
    error (the event pump then resubscribes), and the other stream is cancelled."""
    seen: list[str] = []
    with pytest.raises(RuntimeUnavailable, match="engine gone"):
        async for event in merge_streams(
            _events("a", "b", pause=0.01), _events("x", fail=True, pause=0.05)
        ):
            seen.append(event.name)
    assert sorted(seen) == ["a", "b", "x"]
