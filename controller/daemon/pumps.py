"""The controller loop's pumps: helper tasks that turn outside signals into marked work.

:func:`pump_events` follows the engine's container events and marks the app of each event
that says it may need healing (``die``, ``destroy``, ``oom``, turned ``unhealthy``, and a
swarm's ``tasks_changed``); when the stream breaks it resubscribes with backoff (0.5 s
doubling to 30 s) and marks a full pass, since events may have been missed meanwhile.
:func:`pump_revisions` marks a pass for each new revision the git watcher reports. Both run
until cancelled, under the controller's ``Supervisor``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import structlog

from controller.daemon.backoff import Clock
from controller.daemon.work import Work
from controller.errors import TrueupError
from controller.runtime.base import RuntimeEvent
from controller.source import RevisionWatcher

log = structlog.get_logger(__name__)

#: Events that say an app may need healing (``tasks_changed``: a swarm moved an app's tasks,
#: so its routes need the new addresses).
HEAL_EVENTS = frozenset({"die", "destroy", "oom", "tasks_changed"})


class EventSource(Protocol):
    """What the event pump needs of the engine."""

    def events(self) -> AsyncIterator[RuntimeEvent]: ...


def needs_healing(event: RuntimeEvent) -> bool:
    """True for an event of an app's container that may have left the app short."""
    if event.app is None:
        return False
    return event.kind in HEAL_EVENTS or (
        event.kind == "health_status" and event.health == "unhealthy"
    )


async def pump_events(engine: EventSource, work: Work, clock: Clock) -> None:
    """Follow the engine's events; reconnect with backoff when the stream breaks."""
    failures = 0
    while True:
        try:
            async for event in engine.events():
                failures = 0
                if needs_healing(event):
                    log.info("container_event", app=event.app, kind=event.kind, name=event.name)
                    work.mark(f"event:{event.kind}", event.app)
            # the stream ended without an error (engine restarted): resubscribe
        except TrueupError as exc:
            failures += 1
            log.warning("events_stream_failed", error=str(exc), failures=failures)
        delay = min(30.0, 0.5 * 2 ** min(failures, 6))
        await clock.sleep(delay)
        work.mark("events-reconnect")  # events may have been missed meanwhile


async def pump_revisions(watcher: RevisionWatcher, work: Work) -> None:
    """Mark a pass for every new revision the watcher reports."""
    while True:
        revision = await watcher.wait()
        log.info("revision_seen", revision=revision.sha[:12], branch=revision.branch)
        work.mark("revision")
