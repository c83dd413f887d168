"""Supervised helper tasks: the background tasks of `trueup run`, restarted when they fail.

The controller loop starts its helpers (the git watcher, the revision and engine event pumps)
and the HTTP server its background binder through one :class:`Supervisor`. A helper that
raises anything but cancellation is logged as ``helper_task_failed`` (with the task's name,
the error and the delay), is down, and is restarted after a backoff: 1 s doubling to 1 min,
with jitter, reset once a run lasted a minute. A helper meant to run until cancelled that
returns by itself is restarted the same way (``helper_task_exited``). ``/readyz`` reads
:meth:`Supervisor.down` and is 503 naming each helper that is down, with its error, until it
runs again.

Cancellation keeps its meaning: :meth:`Supervisor.stop` and :meth:`Supervisor.close` cancel
the tasks, and ``KeyboardInterrupt``/``SystemExit`` are never caught. Time comes from the
controller's injected clock, so tests never sleep through a restart delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import random as random_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 60.0
STABLE_AFTER_S = 60.0
"""A run that lasted this long before failing starts the restart backoff afresh."""


class SupervisorClock(Protocol):
    """What the supervisor needs of the controller's clock (``loop.Clock`` has it)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


def describe(exc: BaseException) -> str:
    """``Type: message`` of an unexpected error; an exception group by its first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class HelperState:
    """What ``/readyz`` and the logs say about one helper."""

    name: str
    running: bool = False
    restarts: int = 0
    error: str | None = None
    """The last failure (kept after a restart, for the record)."""
    failed_at: float | None = None
    restart_at: float | None = None

    def to_json(self, now: float) -> dict[str, object]:
        doc: dict[str, object] = {
            "running": self.running,
            "restarts": self.restarts,
            "error": self.error,
        }
        if not self.running and self.restart_at is not None:
            doc["restart_in_s"] = round(max(0.0, self.restart_at - now), 1)
        return doc


class Supervisor:
    """Runs named helper tasks, restarts one that fails, and says which are down."""

    def __init__(
        self,
        *,
        clock: SupervisorClock,
        random: Callable[[], float] = random_module.random,
        initial: float = RESTART_INITIAL_S,
        maximum: float = RESTART_MAX_S,
        stable_after: float = STABLE_AFTER_S,
    ) -> None:
        self.clock = clock
        self.random = random
        self.initial = initial
        self.maximum = maximum
        self.stable_after = stable_after
        self.helpers: dict[str, HelperState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        forever: bool = True,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        """Run ``run()`` as the task ``name`` and keep it running. With ``forever=False`` a
        normal return ends it (a one-off job); ``on_restart`` is called before each restart
        (e.g. to ask for a pass, since events may have been missed while it was down)."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"helper task {name!r} is already running")
        state = HelperState(name)
        self.helpers[name] = state
        self._tasks[name] = asyncio.create_task(
            self._supervise(state, run, forever, on_restart), name=name
        )

    def down(self) -> list[HelperState]:
        """Helpers that failed (or stopped by themselves) and have not run again yet."""
        return [s for s in self.helpers.values() if not s.running]

    async def stop(self, name: str) -> None:
        """Cancel one helper and wait until it is gone."""
        task = self._tasks.pop(name, None)
        self.helpers.pop(name, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        """Cancel every helper."""
        for name in list(self._tasks):
            await self.stop(name)

    async def _supervise(
        self,
        state: HelperState,
        run: Callable[[], Awaitable[None]],
        forever: bool,
        on_restart: Callable[[], None] | None,
    ) -> None:
        failures = 0
        while True:
            state.running, state.restart_at = True, None
            started = self.clock.now()
            failure: Exception | None = None
            try:
                await run()
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:  # a helper's bug or surprise: log, restart, never spread
                failure = exc
                error = describe(exc)
                event = "helper_task_failed"
            else:
                if not forever:
                    self.helpers.pop(state.name, None)
                    self._tasks.pop(state.name, None)
                    return
                error = "stopped by itself"
                event = "helper_task_exited"
            now = self.clock.now()
            failures = 1 if now - started >= self.stable_after else failures + 1
            delay = min(self.maximum, self.initial * 2.0 ** (failures - 1))
            delay *= 0.5 + self.random() / 2
            state.running, state.error, state.failed_at = False, error, now
            state.restart_at = now + delay
            log.error(
                event,
                task=state.name,
                error=error,
                failures=failures,
                retry_in_s=round(delay, 2),
                exc_info=failure if failure is not None else False,
            )
            del failure  # no reference cycle through the traceback while sleeping
            await self.clock.sleep(delay)
            state.restarts += 1
            log.info("helper_task_restarted", task=state.name, restarts=state.restarts)
            if on_restart is not None:
                on_restart()
