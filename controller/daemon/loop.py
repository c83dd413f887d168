"""The controller loop: many passes, triggered by commits, engine events, a timer and requests.

Level-triggered: a trigger only marks work (a full pass, or some apps); a pass always compares
the whole desired state with the whole observed state, then acts on what was marked. Triggers
that arrive during a pass coalesce into one follow-up pass. Failing apps back off
exponentially with jitter (1 s doubling to 5 min by default), reset on success or when a new
revision changes the app; they never hold up other apps. Engine outages back the whole pass
off and never count as "nothing runs".

No exception ends the loop: the pass boundary (``run_pass``) catches everything but
cancellation. A ``TransientError`` (the engine went away, even right after apply) retries the
pass with exponential backoff, a ``PermanentError`` at the next resync, and anything else (a
bug) is logged as ``reconcile_crashed`` with its traceback and retried with backoff; each is
recorded in the history, the metrics (result ``error``) and ``last_error``. The helper tasks
(git watcher, revision and event pumps) run under a ``Supervisor`` that restarts them.

This module holds the loop itself (:class:`Controller`: wait, mark what is due, run a pass,
record it). Beside it: ``work.py`` (marked work and coalescing), ``backoff.py`` (the clock,
the per-app backoff and the retry of a failed pass), ``pumps.py`` (engine events and new
revisions turned into marked work), ``tracking.py`` (per-app status between passes and
``status.json``). A ``notifier`` (``controller.notify``), when set, is told before apply
and after each recorded pass; it never blocks. The live ``feed`` (``events.py``, the
dashboard's event stream) is told when a pass starts, what it planned, which statuses changed
and when it ended; publishing never blocks either. Time comes from an injected ``Clock`` so
tests never sleep through real backoff intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random as random_module
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import structlog

from controller.daemon.backoff import Backoff, Clock, PassRetry, SystemClock
from controller.daemon.events import LiveFeed, status_rows
from controller.daemon.history import ActionRecord, History, PassRecord
from controller.daemon.manual import SyncGate, gated_pass
from controller.daemon.overrides import suspend_plan
from controller.daemon.pumps import pump_events, pump_revisions
from controller.daemon.status import derive_status
from controller.daemon.supervisor import Supervisor
from controller.daemon.tracking import TrackedStatus, status_document, track, write_status_file
from controller.daemon.work import Work
from controller.desired.resolve import DesiredState
from controller.errors import TrueupError
from controller.notify.events import AppHealth
from controller.planning import Plan, restrict
from controller.reconciler import PassResult, Reconciler
from controller.runtime.base import Engine
from controller.source import RevisionWatcher
from controller.targets.observed import Observation

log = structlog.get_logger(__name__)


class PassObserver(Protocol):
    """Hears about every finished pass (the metrics); must not raise and must not block."""

    def pass_finished(
        self, result: PassResult | None, *, outcome: str, duration_s: float, error: str | None
    ) -> None: ...


class PassNotifier(Protocol):
    """Tells people about passes (``controller.notify.Notifier``); must not raise or block."""

    def pass_planned(self, plan: Plan) -> None: ...

    def pass_recorded(
        self,
        result: PassResult | None,
        health: Mapping[str, AppHealth],
        *,
        error: str | None,
        pass_id: int | None = None,
    ) -> None: ...

    async def flush(self, timeout: float) -> None:
        """On shutdown: deliver what is queued within ``timeout`` seconds."""


def actions_of(result: PassResult) -> list[ActionRecord]:
    """The history rows of a pass's outcomes."""
    return [
        ActionRecord(o.app, o.action, "ok" if o.ok else "failed", o.message, o.duration_s)
        for o in result.outcomes
    ]


class Controller:
    """Runs passes until stopped; owns triggers, backoff, status and history."""

    def __init__(
        self,
        reconciler: Reconciler,
        runtime: Engine,
        *,
        watcher: RevisionWatcher | None,
        history: History | None,
        interval: float,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        shutdown_grace: float = 10.0,
        prune: bool = True,
        allow_empty: bool = False,
        status_file: Path | None = None,
        clock: Clock | None = None,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self.reconciler = reconciler
        self.runtime = runtime
        self.watcher = watcher
        self.history = history
        self.interval = interval
        self.shutdown_grace = shutdown_grace
        self.prune = prune
        self.allow_empty = allow_empty
        self.status_file = status_file
        self.clock: Clock = clock or SystemClock()
        self.random = random
        self.backoff = Backoff(
            initial=backoff_initial, maximum=backoff_max, clock=self.clock, random=random
        )
        self.pass_retry = PassRetry(self.backoff)
        self.work = Work()
        self.status: dict[str, TrackedStatus] = {}
        self.passes = 0
        self.last_result: PassResult | None = None
        self.last_error: str | None = None
        self.first_pass_done = asyncio.Event()
        self.helpers = Supervisor(clock=self.clock, random=random)
        """The background tasks (this loop's, and the HTTP server's binder); see /readyz."""
        self._ids = itertools.count(1)
        self._stopping_since: float | None = None
        """When a stop found a pass in flight: the shutdown grace counts from then."""
        self.observers: list[PassObserver] = []
        """Told about every pass: ``outcome`` is noop, changed, failed (an app) or error."""
        self.notifier: PassNotifier | None = None
        """Told before apply and after each recorded pass (notifications, commit statuses)."""
        self.api_url: str | None = None
        """Where the HTTP API listens (written to status.json for `trueup status`)."""
        self.feed = LiveFeed()
        """The dashboard's live events (``daemon/events.py``): publishing never blocks."""
        self.gate = SyncGate()
        """The sync mode, the suspended apps and the approved and pending revisions."""

    # -- running ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` is set; then let a pass in flight finish (or abandon it
        after ``shutdown_grace``), give queued notifications what is left of the grace, and
        return. Containers are never stopped on shutdown."""
        helpers = self._start_helpers()
        self.work.mark("startup")
        next_resync = self.clock.now() + self._jittered(self.interval)
        try:
            while not stop.is_set():
                await self._wait(stop, next_resync)
                if stop.is_set():
                    break
                next_resync = self._mark_due(next_resync)
                if self.work.pending:
                    await self._run_marked(stop)
        finally:
            for name in helpers:
                await self.helpers.stop(name)
            if self.notifier is not None and stop.is_set():
                since = self._stopping_since or time.monotonic()
                left = self.shutdown_grace - (time.monotonic() - since)
                try:
                    await self.notifier.flush(max(0.0, left))
                except Exception as exc:  # an aid: the shutdown goes on
                    log.error("notify_flush_failed", error=str(exc), exc_info=exc)
            log.info("controller_stopped", passes=self.passes)

    def _start_helpers(self) -> list[str]:
        """Start the engine event pump and, with a watcher, the git watch and revision pump."""
        helpers = ["events"]
        self.helpers.start(
            "events",
            lambda: pump_events(self.runtime, self.work, self.clock),
            on_restart=lambda: self.work.mark("events-reconnect"),
        )
        if (watcher := self.watcher) is not None:
            helpers += ["git-watch", "revisions"]
            self.helpers.start("git-watch", watcher.run)
            self.helpers.start("revisions", lambda: pump_revisions(watcher, self.work))
        return helpers

    def _mark_due(self, next_resync: float) -> float:
        """Mark what the clock made due (the resync, app retries, a pass retry); returns the
        next resync time."""
        now = self.clock.now()
        if now >= next_resync:
            self.work.mark("resync")
            next_resync = now + self._jittered(self.interval)
        for app in self.backoff.due():
            self.work.mark("retry", app)
        if (trigger := self.pass_retry.due(now)) is not None:
            self.work.mark(trigger)
        return next_resync

    async def _run_marked(self, stop: asyncio.Event) -> None:
        """Run one pass over the marked work; on ``stop``, give it ``shutdown_grace``."""
        full, apps, trigger = self.work.take()
        task = asyncio.create_task(self.run_pass(full=full, apps=apps, trigger=trigger))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            self._stopping_since = time.monotonic()
            log.info("shutdown_waiting_for_pass", grace_s=self.shutdown_grace)
            try:
                await asyncio.wait_for(asyncio.shield(task), self.shutdown_grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                log.warning("shutdown_abandoned_pass")
        elif (error := task.exception()) is not None:
            if not isinstance(error, Exception):
                raise error  # KeyboardInterrupt, SystemExit: they keep their meaning
            self._crashed(error)  # run_pass records every Exception; never reached

    async def _wait(self, stop: asyncio.Event, next_resync: float) -> None:
        deadlines = [next_resync]
        if (d := self.backoff.next_deadline()) is not None:
            deadlines.append(d)
        if self.pass_retry.retry_at is not None:
            deadlines.append(self.pass_retry.retry_at)
        timeout = max(0.0, min(deadlines) - self.clock.now())
        if self.work.pending:
            return
        waiters = [
            asyncio.create_task(self.work.wake.wait()),
            asyncio.create_task(stop.wait()),
            asyncio.create_task(self.clock.sleep(timeout)),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def _jittered(self, seconds: float) -> float:
        return seconds * (0.9 + 0.2 * self.random())

    # -- one pass --------------------------------------------------------------------------

    async def run_pass(self, *, full: bool, apps: set[str], trigger: str) -> PassResult | None:
        """One pass over everything observed, acting on ``apps`` (or all when ``full``)."""
        pass_id = next(self._ids)
        started_wall = time.time()
        started = self.clock.now()
        only = None if full else set(apps)

        def narrow(plan: Plan, desired: DesiredState) -> Plan:
            plan = suspend_plan(plan, desired, self.gate.overrides.suspended)
            narrowed = restrict(plan, only=only, exclude=self.backoff.blocked(desired))
            self.feed.planned(narrowed)
            if self.notifier is not None:
                self.notifier.pass_planned(narrowed)
            return narrowed

        self.feed.pass_started(trigger)
        with structlog.contextvars.bound_contextvars(pass_id=pass_id, trigger=trigger):
            try:
                result = await gated_pass(
                    self.reconciler,
                    self.gate,
                    narrow,
                    prune=self.prune,
                    allow_empty=self.allow_empty,
                )
                self.last_result = result
                self.last_error = None
                lost = await self._after_pass(result, trigger, started, started_wall)
            except asyncio.CancelledError:
                duration = self.clock.now() - started
                stopping = "controller stopping"
                record = PassRecord(
                    started_wall, duration, None, trigger, "abandoned", 0, 0, stopping
                )
                self._record(record, [])
                raise
            except Exception as exc:  # the pass boundary: nothing but cancellation passes it
                self._pass_failed(exc, trigger, started, started_wall)
                return None
            self.passes += 1
            if lost is None:
                self.pass_retry.succeeded()
                self.first_pass_done.set()
            return result

    def _pass_failed(
        self, exc: Exception, trigger: str, started: float, started_wall: float
    ) -> None:
        message = self._schedule_retry(exc)
        pass_id = self._record(
            PassRecord(
                started_wall, self.clock.now() - started, None, trigger, "error", 0, 0, message
            ),
            [],
        )
        self.passes += 1
        self._write_status_file()
        self._tell(None, message, pass_id)
        self._notify(None, "error", self.clock.now() - started, message)

    def _crashed(self, exc: Exception) -> None:
        """A pass task that raised past ``run_pass`` (it records every Exception itself)."""
        self._schedule_retry(exc)
        self.passes += 1
        self._notify(None, "error", 0.0, self.last_error)

    def _schedule_retry(self, exc: Exception, *, stage: str | None = None) -> str:
        """Classify a failed pass, log it, set ``last_error`` and schedule the retry (see
        ``PassRetry.failed_pass``). Returns the message recorded for it."""
        self.last_error = self.pass_retry.failed_pass(exc, stage=stage, resync_s=self.interval)
        return self.last_error

    async def _after_pass(
        self, result: PassResult, trigger: str, started: float, started_wall: float
    ) -> TrueupError | None:
        """Backoff, status, history, status file and metrics of a pass that ran; returns the
        error when the engine could not be observed after apply (the pass then counts as an
        error and is retried, but what it applied is recorded)."""
        desired = result.desired
        for outcome in result.outcomes:
            want = desired.apps.get(outcome.app) if desired else None
            if outcome.ok:
                self.backoff.succeeded(outcome.app)
            else:
                delay = self.backoff.failed(outcome.app, want.spec_hash if want else None)
                log.warning(
                    "app_backoff",
                    app=outcome.app,
                    failures=self.backoff.failures(outcome.app),
                    retry_in_s=round(delay, 2),
                    error=outcome.message.splitlines()[0] if outcome.message else "",
                )
        observation = result.after
        lost: TrueupError | None = None
        if observation is None and result.outcomes:
            try:
                observation = await self.reconciler.target.observe()
            except TrueupError as exc:  # the engine went away right after apply
                lost = exc
        if lost is None:  # else the status stays as last seen until the retry observes
            self._update_status(result, observation)
        failed = len(result.failed)
        outcome_word = "failed" if failed else ("changed" if result.outcomes else "noop")
        message = "; ".join(p.message for p in result.problems[:3])
        if lost is not None:
            outcome_word = "error"
            message = self._schedule_retry(lost, stage="observing the engine after apply")
        duration = self.clock.now() - started
        record = PassRecord(
            started_wall, duration, result.revision, trigger, outcome_word,
            len(result.outcomes), failed, message,
        )  # fmt: skip
        pass_id = self._record(record, actions_of(result))
        self._write_status_file()
        self._tell(result, self.last_error, pass_id)
        self._notify(result, outcome_word, self.clock.now() - started, self.last_error)
        return lost

    def _notify(
        self, result: PassResult | None, outcome: str, duration_s: float, error: str | None
    ) -> None:
        for observer in self.observers:
            try:
                observer.pass_finished(result, outcome=outcome, duration_s=duration_s, error=error)
            except Exception as exc:  # metrics are an aid: never let them stop reconciling
                log.error("pass_observer_failed", error=str(exc))

    def _tell(self, result: PassResult | None, error: str | None, pass_id: int | None) -> None:
        if self.notifier is None:
            return
        health = {
            name: AppHealth(t.status.health, t.status.sync, t.status.message)
            for name, t in self.status.items()
        }
        self.notifier.pass_recorded(result, health, error=error, pass_id=pass_id)

    def _record(self, record: PassRecord, actions: list[ActionRecord]) -> int | None:
        pass_id = self._store(record, actions)
        self.feed.pass_finished(
            pass_id=pass_id,
            outcome=record.result,
            revision=record.revision,
            duration_s=record.duration_s,
            message=record.message,
            pending=self.gate.pending.revision if self.gate.pending else None,
        )
        return pass_id

    def _store(self, record: PassRecord, actions: list[ActionRecord]) -> int | None:
        if self.history is None:
            return None
        try:
            return self.history.record(record, actions, self.feed.plan)
        except Exception as exc:  # history is an audit aid: never let it stop reconciling
            log.error("history_write_failed", error=str(exc))
            return None

    # -- status ----------------------------------------------------------------------------

    def _update_status(self, result: PassResult, observation: Observation | None) -> None:
        desired = result.desired
        seen = observation or result.observed
        if desired is None or seen is None:
            return
        failed = {o.app: o.message for o in result.outcomes if not o.ok}
        now = self.clock.now()
        fresh: dict[str, TrackedStatus] = {}
        suspended = self.gate.overrides.suspended
        derived = derive_status(seen, desired, result.plan, result.outcomes, suspended=suspended)
        for status in self.gate.overlay(derived):
            name = status.name
            error = failed.get(name) or desired.errors.get(name)
            fresh[name] = track(self.status.get(name), status, error, now)
        before, self.status = self.status, fresh
        self.feed.statuses(status_rows(before), status_rows(fresh))

    def status_json(self) -> dict[str, object]:
        """``{"apps": [...]}`` as `trueup status --output json` prints it."""
        return {"apps": [t.status.to_json() for t in self.status.values()]}

    def _write_status_file(self) -> None:
        if self.status_file is None:
            return
        revision = self.last_result.revision if self.last_result else None
        apps = [t.status.to_json() for t in self.status.values()]
        doc = status_document(apps, revision=revision, api=self.api_url, last_error=self.last_error)
        doc.update(self.gate.to_json())
        write_status_file(self.status_file, doc)
