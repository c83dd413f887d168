"""The notifier: told by the controller loop about each pass, it decides what is news and
hands messages and commit statuses to the destinations' channels.

``pass_planned`` (before apply) posts ``pending`` for a revision a pass starts applying;
``pass_recorded`` (after the pass is in the history) derives the events, keeps the ones that
are news (``dedup``, state in the history), queues one message per destination that wants
some of them, and posts the commit's ``success``/``failure``. Neither waits for the network,
and neither raises: a notification is an aid, never a reason for a pass to fail. ``flush``
(on shutdown) gives what is still queued a bounded time to go, and records the rest as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from controller.notify.commit_status import CommitStatuses, State
from controller.notify.dedup import Key, Sent, select
from controller.notify.delivery import Result
from controller.notify.destinations import Destination
from controller.notify.events import (
    CONTROLLER,
    GIT,
    AppHealth,
    Event,
    derive_events,
    fingerprint,
)
from controller.notify.events import first_line as first
from controller.notify.message import Notice
from controller.notify.sender import Channel
from controller.planning import Plan
from controller.reconciler import PassResult

log = structlog.get_logger(__name__)


class Store:
    """The dedup state: in the history when there is one, else in memory."""

    def __init__(self, history: object | None) -> None:
        self.history = history
        self.memory: dict[Key, Sent] = {}
        if history is not None:
            rows = history.notify_state()  # type: ignore[attr-defined]
            self.memory = {k: Sent(v[0], v[1]) for k, v in rows.items()}

    def update(self, put: Mapping[Key, Sent], drop: set[Key]) -> None:
        for key in drop:
            self.memory.pop(key, None)
        self.memory.update(put)
        if self.history is not None:
            self.history.update_notify_state(  # type: ignore[attr-defined]
                {k: (v.fingerprint, v.sent_at) for k, v in put.items()}, drop
            )


@dataclass(frozen=True)
class Awaiting:
    """A revision planned in manual sync mode, waiting for someone to approve it."""

    revision: str
    subject: str
    plan: Plan

    def event(self) -> Event:
        """``controller: awaiting approval: 3f2a9c1b7d4e "Bump web": +0 ~1 -0 (web)``, once
        per revision (its fingerprint), repeated like a failure while it waits."""
        plan = self.plan
        apps = ", ".join(sorted({c.app for c in (*plan.changes, *plan.refused)}))
        subject = f' "{first(self.subject)}"' if self.subject else ""
        detail = f"{self.revision[:12]}{subject}: {plan_counts(plan)}" + (
            f" ({apps})" if apps else ""
        )
        return Event(CONTROLLER, "awaiting_approval", detail, self.revision)


@dataclass
class NotifyConfig:
    instance: str
    repeat_s: float = 3600.0
    unreachable_s: float = 300.0
    external_url: str | None = None


def plan_counts(plan: Plan) -> str:
    """``+1 ~2 -0``: apps created, changed, deleted."""
    created = sum(1 for c in plan.changes if c.action == "create")
    deleted = sum(1 for c in plan.changes if c.action == "delete")
    changed = sum(1 for c in plan.changes if c.action not in ("create", "delete", "route"))
    return f"+{created} ~{changed} -{deleted}"


class Notifier:
    """Turns passes into messages and commit statuses (see the module docstring)."""

    def __init__(
        self,
        config: NotifyConfig,
        destinations: Sequence[Destination],
        *,
        statuses: CommitStatuses | None = None,
        history: object | None = None,
        subject_of: Callable[[str], str] = lambda sha: "",
        report: Callable[[str, Result], None] = lambda name, result: None,
        now: Callable[[], float] = time.time,
        git_trouble: Callable[[], tuple[float, str] | None] = lambda: None,
        awaiting: Callable[[], Awaiting | None] = lambda: None,
    ) -> None:
        self.config = config
        self.destinations = list(destinations)
        self.statuses = statuses
        self.store = Store(history)
        self.history = history
        self.subject_of = subject_of
        self.now = now
        self._report = report
        self.git_trouble = git_trouble
        """(seconds git fetches have failed, the error), or None while they work."""
        self.awaiting = awaiting
        """Manual sync: the revision whose plan waits for approval, or None."""
        self.channels = {
            d.name: Channel(d.name, max_per_minute=d.max_per_minute, report=self.record)
            for d in self.destinations
        }
        if statuses is not None:
            self.channels[statuses.name] = Channel(
                statuses.name, max_per_minute=60, report=self.record
            )
        self._failing_since: float | None = None
        self._plan_counts: dict[str, str] = {}

    def record(self, name: str, result: Result) -> None:
        """A delivery's final result: logged, in the history, counted."""
        event = "notification_sent" if result.outcome == "ok" else "notification_failed"
        log.info(event, destination=name, result=result.outcome, detail=result.detail)
        if self.history is not None:
            try:
                self.history.record_notification(  # type: ignore[attr-defined]
                    self.now(), name, result.outcome, result.detail
                )
            except Exception as exc:  # the history is an aid
                log.error("history_write_failed", error=str(exc))
        self._report(name, result)

    async def flush(self, timeout: float) -> None:
        """On shutdown: wait up to ``timeout`` seconds for the queued messages and statuses to
        be delivered (each channel keeps its rate limit and retries); what is still queued
        then is recorded as ``dropped`` (log, history, metric), never silently lost."""
        busy = [c for c in self.channels.values() if c.pending]
        if not busy:
            return
        log.info(
            "notifications_flushing", jobs=sum(c.pending for c in busy), timeout_s=round(timeout, 1)
        )
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.drain() for c in busy)), timeout)
        for channel in busy:
            for _ in range(channel.pending):
                self.record(channel.name, Result("dropped", "controller stopped"))

    # -- hooks of the loop -----------------------------------------------------------------

    def pass_planned(self, plan: Plan) -> None:
        """A pass is about to apply ``plan``: ``pending`` on its revision."""
        if plan.revision is None or not plan.changes:
            return
        counts = plan_counts(plan)
        self._plan_counts[plan.revision] = counts
        self._status(plan.revision, "pending", f"applying {counts}", None)

    def pass_recorded(
        self,
        result: PassResult | None,
        health: Mapping[str, AppHealth],
        *,
        error: str | None,
        pass_id: int | None = None,
    ) -> None:
        """A pass is over and recorded: send what is news."""
        try:
            self._pass_recorded(result, health, error, pass_id)
        except Exception as exc:  # an aid: never a reason for the loop to stop
            log.error("notify_failed", error=str(exc), exc_info=exc)

    def _pass_recorded(
        self,
        result: PassResult | None,
        health: Mapping[str, AppHealth],
        error: str | None,
        pass_id: int | None,
    ) -> None:
        now = self.now()
        events: list[Event] = []
        if result is None:
            self._failing_since = self._failing_since or now
            if now - self._failing_since >= self.config.unreachable_s and error:
                events.append(Event(CONTROLLER, "unreachable", first(error), fingerprint(error)))
            fine: set[str] = set()
        else:
            self._failing_since = None
            errors = {f"file:{p.file}": str(p) for p in result.problems}
            if result.desired is not None:
                errors.update(result.desired.errors)
            events = derive_events(result.plan, result.outcomes, health, errors)
            fine = {a for a, h in health.items() if h.fine} | {CONTROLLER}
        if (waiting := self.awaiting()) is not None:
            events.append(waiting.event())
        git = self.git_trouble()
        if git is None:
            fine.add(GIT)
        elif git[0] >= self.config.unreachable_s:
            events.append(Event(GIT, "unreachable", first(git[1]), fingerprint(git[1])))

        def is_fine(subject: str) -> bool:
            if subject.startswith("file:"):
                return result is not None and subject not in {e.app for e in events}
            return subject in fine

        decision = select(
            events, is_fine, self.store.memory, now=now, repeat_s=self.config.repeat_s
        )
        self.store.update(decision.put, decision.drop)
        if decision.send:
            revision = result.revision if result else None
            subject = self.subject_of(revision) if revision else ""
            told = tuple(decision.send)
            notice = Notice(self.config.instance, revision, subject, told, str(uuid.uuid4()), now)
            self._queue(notice)
        if result is not None:
            self._final_status(result, pass_id)

    def _queue(self, notice: Notice) -> None:
        for dest in self.destinations:
            wanted = notice.only(dest.kinds, dest.min_severity)
            if wanted is not None:
                self.channels[dest.name].offer(functools.partial(dest.send, wanted))

    def _final_status(self, result: PassResult, pass_id: int | None) -> None:
        revision = result.revision
        if revision is None or self.statuses is None:
            return
        applied = bool(result.outcomes)
        if not applied and any(k[0] == f"status:{revision}" for k in self.store.memory):
            return  # told already; nothing this pass did changes it
        problems = [o.message for o in result.failed] + [str(p) for p in result.problems]
        counts = self._plan_counts.pop(revision, None) or plan_counts(result.plan)
        state: State = "failure" if problems else "success"
        description = first(problems[0]) if problems else f"deployed {counts}"
        url = None
        if self.config.external_url and pass_id is not None:
            url = f"{self.config.external_url.rstrip('/')}/passes/{pass_id}"
        self._status(revision, state, description, url)

    def _status(self, sha: str, state: State, description: str, url: str | None) -> None:
        statuses = self.statuses
        if statuses is None:
            return
        key = (f"status:{sha}", f"{state}:{fingerprint(description)}")
        if key in self.store.memory:
            return  # never the same (sha, context, state, description) twice
        self.store.update({key: Sent(description[:140], self.now())}, set())
        self.channels[statuses.name].offer(lambda: statuses.post(sha, state, description, url))
