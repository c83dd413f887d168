"""The live feed of `trueup run`: what the dashboard's Server-Sent Events stream carries.

:class:`EventHub` numbers each published event (``<boot>.<n>``: a restarted controller never
resumes a browser from another process's numbers), keeps the newest :data:`RING` in a ring
buffer so a reconnecting browser (``Last-Event-ID``) gets what it missed, and puts each event
into every subscriber's bounded queue without waiting: a subscriber whose queue is full is
dropped (its stream ends; the browser reconnects and resumes), never waited for.

:class:`LiveFeed` is what the controller loop calls, with small calls that only publish:
``pass_started``, ``planned`` (a new revision, and the apps the pass is about to change,
shown ``Progressing`` until it ends), ``statuses`` (each app whose status changed) and
``pass_finished`` (with a ``pending`` event when the revision waiting for approval in manual
mode changed). Served by ``controller/http/dashboard_streams.py``. Standard library only;
never raises into the loop.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import structlog

from controller.daemon.tracking import TrackedStatus
from controller.planning import Plan

log = structlog.get_logger(__name__)

RING = 512
"""Events kept for resuming; an older ``Last-Event-ID`` gets a full snapshot instead."""
QUEUE = 256
"""Events one subscriber may have unsent before it is dropped."""
PROGRESS_ACTIONS = frozenset({"create", "update", "scale", "heal"})
"""Plan actions that make an app ``Progressing`` while the pass runs."""


@dataclass(frozen=True)
class Event:
    """One published event: its SSE ``id``, ``event`` name and JSON ``data``."""

    id: str
    kind: str
    data: Mapping[str, Any]

    @cached_property
    def frame(self) -> bytes:
        """The event as one SSE frame (the JSON has no newline, so one ``data:`` line);
        made once, however many clients it is sent to."""
        body = json.dumps(self.data, separators=(",", ":"), sort_keys=True, default=str)
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n".encode()


@dataclass(eq=False)
class Subscriber:
    """One open stream: its queue, and whether the hub dropped it for falling behind."""

    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    dropped: bool = False


class EventHub:
    """Numbered events, a ring buffer to resume from, and bounded per-subscriber queues."""

    def __init__(self, *, ring: int = RING) -> None:
        self.boot = secrets.token_hex(4)
        self._next = 1
        self._ring: deque[Event] = deque(maxlen=ring)
        self._subscribers: set[Subscriber] = set()

    @property
    def last_id(self) -> str:
        """The id of the newest event (``<boot>.0`` before the first)."""
        return f"{self.boot}.{self._next - 1}"

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, data: Mapping[str, Any]) -> Event:
        """Number ``data`` as event ``kind``, keep it, hand it to every subscriber; a full
        subscriber is dropped. Never blocks."""
        event = Event(f"{self.boot}.{self._next}", kind, data)
        self._next += 1
        self._ring.append(event)
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped = True
                self._subscribers.discard(sub)
                log.warning("events_client_dropped", queued=sub.queue.qsize())
        return event

    def subscribe(self, last_id: str | None = None) -> tuple[Subscriber, list[Event] | None]:
        """A new subscriber and what it missed since ``last_id``: the events after it, or
        None when they are no longer all kept (or the id is not this process's): then the
        caller sends a full snapshot first. Without ``last_id``: nothing missed."""
        sub = Subscriber()
        self._subscribers.add(sub)
        if last_id is None:
            return sub, []
        return sub, self.since(last_id)

    def since(self, last_id: str) -> list[Event] | None:
        """The kept events after ``last_id``; None when that cannot be told exactly."""
        boot, _, number = last_id.strip().partition(".")
        if boot != self.boot or not number.isdigit():
            return None
        seen = int(number)
        if seen >= self._next:
            return None
        oldest = self._ring[0] if self._ring else None
        if oldest is not None and seen < int(oldest.id.partition(".")[2]) - 1:
            return None  # some were pushed out of the ring
        return [e for e in self._ring if int(e.id.partition(".")[2]) > seen]

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)


def status_rows(status: Mapping[str, TrackedStatus]) -> dict[str, dict[str, Any]]:
    """Each app's status as the feed publishes it: the status JSON and the last error."""
    return {n: {**t.status.to_json(), "last_error": t.last_error} for n, t in status.items()}


def plan_changes(plan: Plan) -> list[dict[str, Any]]:
    """A plan's changes in the shape of ``trueup diff --output json`` (values of secrets are
    never in a plan: they show as ``(secret changed)``)."""
    return [
        {
            "app": c.app,
            "action": c.action,
            "reasons": list(c.reasons),
            "fields": [
                {"path": f.path, "before": f.before, "after": f.after}
                | ({"diff": list(f.detail)} if f.detail else {})
                for f in c.fields
            ],
        }
        for c in plan.changes
    ]


class LiveFeed:
    """The controller loop's side of the hub: small calls that publish and never raise."""

    def __init__(self, hub: EventHub | None = None) -> None:
        self.hub = hub or EventHub()
        self.running = False
        """Whether a pass is running."""
        self.in_progress: frozenset[str] = frozenset()
        """The apps the running pass is changing (shown Progressing)."""
        self.revision: str | None = None
        """The newest revision a pass planned."""
        self.pass_started_at: float | None = None
        self.plan: list[dict[str, Any]] | None = None
        """The changes the running (or last) pass planned, as the history keeps them."""
        self.last_pass: dict[str, Any] | None = None
        """The last finished pass (its ``pass_finished`` data and ``at``)."""
        self.pending: str | None = None
        """The revision waiting for approval (manual mode)."""

    def pass_started(self, trigger: str) -> None:
        self.running, self.pass_started_at, self.plan = True, time.time(), None
        self._publish("pass_started", {"trigger": trigger, "at": self.pass_started_at})

    def planned(self, plan: Plan) -> None:
        """A new revision, and the apps this pass changes (``Progressing`` until it ends)."""
        if plan.revision is not None and plan.revision != self.revision:
            self.revision = plan.revision
            self._publish("revision", {"revision": plan.revision})
        self.plan = plan_changes(plan)
        changing = {c.app for c in plan.changes if c.action in PROGRESS_ACTIONS}
        self.in_progress = frozenset(changing)
        for app in sorted(changing):
            self._publish("app", {"name": app, "health": "Progressing", "sync": "OutOfSync"})

    def statuses(
        self, before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """An ``app`` event per app whose status changed (or that the pass showed
        Progressing), an ``app_removed`` per app gone."""
        for name in sorted(after):
            if before.get(name) != after[name] or name in self.in_progress:
                self._publish("app", dict(after[name]))
        for name in sorted(set(before) - set(after)):
            self._publish("app_removed", {"name": name})

    def pass_finished(
        self,
        *,
        pass_id: int | None,
        outcome: str,
        revision: str | None,
        duration_s: float,
        message: str,
        pending: str | None = None,
    ) -> None:
        """The pass ended (and, when it changed, the revision now waiting for approval)."""
        self.running, self.in_progress = False, frozenset()
        if pending != self.pending:
            self.pending = pending
            self._publish("pending", {"revision": pending})
        data = {
            "pass_id": pass_id,
            "outcome": outcome,
            "revision": revision,
            "duration_s": round(duration_s, 3),
            "message": message,
            "at": time.time(),
        }
        self.last_pass = data
        self._publish("pass_finished", data)

    def publish(self, kind: str, data: Mapping[str, Any]) -> None:
        """Any other event (the pending revision of manual mode, say)."""
        self._publish(kind, data)

    def _publish(self, kind: str, data: Mapping[str, Any]) -> None:
        try:
            self.hub.publish(kind, data)
        except Exception as exc:  # the feed is an aid: it never stops reconciling
            log.error("events_publish_failed", kind=kind, error=str(exc))
