"""Which events are news: sent only when (subject, kind, fingerprint) changes.

Pure: :func:`select` takes the events of a pass and the state of what was last sent (kept in
the SQLite history by the notifier, so a restarted controller knows it) and returns what to
send and how the state changes. An unchanged event repeats at most once per ``repeat_s``; a
subject that had a failing event and is fine now gets one ``recovered`` event (carrying the
change that fixed it), and its failing state is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from controller.notify.events import FAILING, Event

Key = tuple[str, str]
"""(subject, kind)."""


@dataclass(frozen=True)
class Sent:
    """The last event of a (subject, kind) that was sent, and when (wall clock)."""

    fingerprint: str
    sent_at: float


@dataclass(frozen=True)
class Decision:
    """What to send now, and the state to keep (``put``) or forget (``drop``)."""

    send: list[Event] = field(default_factory=list)
    put: dict[Key, Sent] = field(default_factory=dict)
    drop: set[Key] = field(default_factory=set)


def select(
    events: Sequence[Event],
    fine: Callable[[str], bool],
    state: Mapping[Key, Sent],
    *,
    now: float,
    repeat_s: float,
) -> Decision:
    """The news among ``events``; ``fine(subject)`` says a subject is fine after the pass."""
    decision = Decision()
    for event in events:
        prev = state.get((event.app, event.kind))
        if prev and prev.fingerprint == event.fingerprint and now - prev.sent_at < repeat_s:
            continue
        decision.send.append(event)
        decision.put[(event.app, event.kind)] = Sent(event.fingerprint, now)
    failing_now = {e.app for e in events if e.kind in FAILING}
    failed_before = sorted({app for app, kind in state if kind in FAILING})
    for subject in failed_before:
        if subject in failing_now or not fine(subject):
            continue
        decision.drop.update(k for k in state if k[0] == subject and k[1] in FAILING)
        fix = next((e for e in decision.send if e.app == subject and e.kind == "deployed"), None)
        if fix is not None:
            decision.send.remove(fix)
        decision.send.append(Event(subject, "recovered", fix.detail if fix else ""))
    decision.send.sort(key=lambda e: e.app)
    return decision
