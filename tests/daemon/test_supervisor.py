"""Supervised helper tasks with an injected clock: restart with backoff, down until it runs."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from controller.daemon.supervisor import Supervisor


class StepClock:
    """Time moves only when a test says so; sleepers wake when it passed their deadline."""

    def __init__(self) -> None:
        self.t = 0.0
        self.moved = asyncio.Event()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        deadline = self.t + seconds
        while self.t < deadline:
            await self.moved.wait()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.moved.set()
        self.moved = asyncio.Event()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_failing_helper_is_logged_restarted_with_backoff_and_down_meanwhile() -> None:
    """Each failure logs the task's name and error; the helper stays down for 1, 2, 4 s (the
    backoff) and runs again after it; a restart calls ``on_restart``."""
    clock = StepClock()
    supervisor = Supervisor(clock=clock, random=lambda: 1.0)
    runs: list[float] = []
    restarts: list[float] = []

    async def flaky() -> None:
        runs.append(clock.now())
        if len(runs) <= 3:
            raise ValueError(f"boom {len(runs)}")
        await asyncio.Event().wait()  # the fourth run stays up

    with capture_logs() as logs:
        supervisor.start("pump", flaky, on_restart=lambda: restarts.append(clock.now()))
        await settle()
        for delay in (1.0, 2.0, 4.0):
            [state] = supervisor.down()
            assert (state.name, state.running) == ("pump", False)
            clock.advance(delay - 0.01)
            await settle()
            assert supervisor.down() == [state]  # not before its backoff
            clock.advance(0.01)
            await settle()
        assert supervisor.down() == []
        assert supervisor.helpers["pump"].restarts == 3
        assert supervisor.helpers["pump"].error == "ValueError: boom 3"
    assert runs == [0.0, 1.0, 3.0, 7.0] and restarts == [1.0, 3.0, 7.0]
    failed = [e for e in logs if e["event"] == "helper_task_failed"]
    assert [(e["task"], e["error"], e["retry_in_s"]) for e in failed] == [
        ("pump", "ValueError: boom 1", 1.0),
        ("pump", "ValueError: boom 2", 2.0),
        ("pump", "ValueError: boom 3", 4.0),
    ]
    await supervisor.close()
    assert supervisor.helpers == {}


async def test_a_helper_that_returns_is_restarted_unless_it_is_a_one_off_job() -> None:
    """A helper meant to run forever that returns is down and restarted; ``forever=False``
    ends quietly; an error inside a task group is named by its first leaf."""
    clock = StepClock()
    supervisor = Supervisor(clock=clock, random=lambda: 1.0)
    done: list[str] = []

    async def returns() -> None:
        done.append("forever")

    async def one_off() -> None:
        done.append("once")

    async def grouped() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.sleep(3600))
            group.create_task(one_off_failure())

    async def one_off_failure() -> None:
        raise KeyError("refs/heads/main")

    with capture_logs() as logs:
        supervisor.start("loop", returns)
        supervisor.start("bind", one_off, forever=False)
        supervisor.start("watch", grouped)
        await settle()
    assert sorted(done) == ["forever", "once"]
    assert "bind" not in supervisor.helpers
    down = {s.name: s.error for s in supervisor.down()}
    assert down == {"loop": "stopped by itself", "watch": "KeyError: 'refs/heads/main'"}
    assert [e["task"] for e in logs if e["event"] == "helper_task_exited"] == ["loop"]
    clock.advance(1.0)
    await settle()
    assert done.count("forever") == 2
    await supervisor.close()


async def test_cancellation_stops_a_helper_without_a_restart() -> None:
    """``stop`` cancels the task for good: no failure is logged and nothing restarts."""
    clock = StepClock()
    supervisor = Supervisor(clock=clock)
    started: list[int] = []

    async def forever() -> None:
        started.append(1)
        await asyncio.Event().wait()

    with capture_logs() as logs:
        supervisor.start("events", forever)
        await settle()
        await supervisor.stop("events")
        clock.advance(100)
        await settle()
    assert started == [1] and supervisor.helpers == {}
    assert not [e for e in logs if e["event"].startswith("helper_task")]


async def test_a_helper_that_ran_a_while_before_failing_restarts_after_the_first_delay() -> None:
    """The restart backoff starts afresh once a run lasted ``stable_after``: a crash an hour
    after the last one waits 1 s, not the grown delay."""
    clock = StepClock()
    supervisor = Supervisor(clock=clock, random=lambda: 1.0, stable_after=60.0)
    crash = asyncio.Event()
    runs = 0

    async def pump() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ConnectionError("reset")
        await crash.wait()
        raise ConnectionError("reset again")

    with capture_logs() as logs:
        supervisor.start("events", pump)
        await settle()
        clock.advance(1.0)
        await settle()
        clock.advance(2.0)
        await settle()
        assert runs == 3 and supervisor.down() == []
        clock.advance(3600)
        crash.set()
        await settle()
    delays = [e["retry_in_s"] for e in logs if e["event"] == "helper_task_failed"]
    assert delays == [1.0, 2.0, 1.0]
    await supervisor.close()
