"""Backoff in the controller loop: the clock it runs on, the delay formula, and its two uses.

Every delay is exponential with "equal jitter" (:func:`backoff_delay`): between half and all
of ``initial * 2**(failures - 1)``, capped at ``maximum`` (1 s doubling to 5 min by default).

* :class:`Backoff` holds failing apps back, each keyed to the spec that failed, so a new
  revision that changes the app retries it at once; success resets it. It never holds up
  other apps.
* :class:`PassRetry` schedules the next try of a whole pass that failed on a transient error
  (``engine-retry``) or a bug (``error-retry``), backing off over consecutive failed passes;
  a pass that observed the engine resets it.

Time comes from an injected :class:`Clock`, so tests never sleep through a real delay.
"""

from __future__ import annotations

import asyncio
import random as random_module
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from controller.daemon.supervisor import describe
from controller.desired.resolve import DesiredState
from controller.errors import TransientError, TrueupError

log = structlog.get_logger(__name__)


class Clock(Protocol):
    """Monotonic time and sleeping; tests inject a manual clock."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def classify(exc: Exception) -> tuple[str, str]:
    """``(kind, message)`` of what failed a pass: ``transient`` or ``permanent`` (a
    ``TrueupError``, by its class), or ``internal`` (anything else: a bug)."""
    if isinstance(exc, TrueupError):
        return ("transient" if isinstance(exc, TransientError) else "permanent"), str(exc)
    return "internal", f"internal error: {describe(exc)}"


def backoff_delay(failures: int, *, initial: float, maximum: float, draw: float) -> float:
    """The delay after ``failures`` consecutive failures; ``draw`` in [0, 1) picks where
    between half and all of the capped step it falls."""
    base = min(maximum, initial * 2.0 ** (failures - 1))
    return base * (0.5 + draw / 2)


@dataclass
class _AppBackoff:
    failures: int
    not_before: float
    spec_hash: str | None


class Backoff:
    """Per-app exponential backoff with jitter, keyed to the spec that failed."""

    def __init__(
        self,
        *,
        initial: float,
        maximum: float,
        clock: Clock,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self.random = random
        self._apps: dict[str, _AppBackoff] = {}

    def delay(self, failures: int) -> float:
        """The jittered delay after ``failures`` consecutive failures."""
        return backoff_delay(
            failures, initial=self.initial, maximum=self.maximum, draw=self.random()
        )

    def failed(self, app: str, spec_hash: str | None) -> float:
        """Record a failure; return the delay before the app is tried again."""
        entry = self._apps.get(app)
        failures = entry.failures + 1 if entry else 1
        delay = self.delay(failures)
        self._apps[app] = _AppBackoff(failures, self.clock.now() + delay, spec_hash)
        return delay

    def succeeded(self, app: str) -> None:
        self._apps.pop(app, None)

    def failures(self, app: str) -> int:
        entry = self._apps.get(app)
        return entry.failures if entry else 0

    def blocked(self, desired: DesiredState) -> set[str]:
        """Apps still waiting out their delay; a changed spec (new revision) retries at once."""
        now = self.clock.now()
        held: set[str] = set()
        for app, entry in list(self._apps.items()):
            want = desired.apps.get(app)
            if want is not None and want.spec_hash != entry.spec_hash:
                del self._apps[app]
                continue
            if entry.not_before > now:
                held.add(app)
        return held

    def next_deadline(self) -> float | None:
        return min((e.not_before for e in self._apps.values()), default=None)

    def due(self) -> set[str]:
        now = self.clock.now()
        return {a for a, e in self._apps.items() if e.not_before <= now}


class PassRetry:
    """When a failed pass is tried again: ``retry_at`` and the trigger it is marked with.
    It backs off with the apps' settings (``backoff``'s initial, maximum, clock, jitter)."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.failures = 0
        """Consecutive failed passes, whatever failed."""
        self.retry_at: float | None = None
        self.trigger = "engine-retry"

    def failed(self, *, internal: bool) -> float:
        """A pass failed on a transient error (or, ``internal``, a bug): schedule its retry
        and return the delay."""
        self.failures += 1
        delay = self.backoff.delay(self.failures)
        self.retry_at = self.backoff.clock.now() + delay
        self.trigger = "error-retry" if internal else "engine-retry"
        return delay

    def succeeded(self) -> None:
        """A pass observed the engine: the next failure starts the backoff afresh."""
        self.failures = 0

    def due(self, now: float) -> str | None:
        """The retry's trigger once it is due (and then no longer scheduled), else None."""
        if self.retry_at is None or now < self.retry_at:
            return None
        self.retry_at = None
        return self.trigger

    def failed_pass(self, exc: Exception, *, stage: str | None, resync_s: float) -> str:
        """A pass failed on ``exc`` (at ``stage``, when named): classify it, schedule the
        retry (a transient error and a bug with backoff; a permanent one waits for the
        resync, ``resync_s`` away) and log it (``reconcile_crashed`` with its traceback for a
        bug, else ``reconcile_failed``). Returns the message to record."""
        kind, message = classify(exc)
        if stage is not None:
            message = f"{stage}: {message}"
        delay = resync_s if kind == "permanent" else self.failed(internal=kind == "internal")
        if kind == "internal":
            log.error(
                "reconcile_crashed",
                error=message,
                error_type=type(exc).__name__,
                retry_in_s=round(delay, 2),
                exc_info=exc,
            )
        else:
            log.warning(
                "reconcile_failed",
                error=message,
                transient=kind == "transient",
                retry_in_s=round(delay, 2),
            )
        return message
