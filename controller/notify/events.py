"""Events of a pass, derived purely from its result and the apps' status after it.

Called by the notifier after each recorded pass. An event names an app (or ``controller``
for the controller itself), a kind, a severity and a fingerprint: the error text with
durations, timestamps and ids taken out, so the same failure gives the same fingerprint on
every pass. A pass that changed nothing and found nothing wrong gives no event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from controller.notify.kinds import KINDS, Kind
from controller.planning import Change, FieldChange, Plan
from controller.targets.runner import Outcome

Severity = Literal["info", "warning", "error"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}
SEVERITY: dict[Kind, Severity] = {
    "deployed": "info",
    "recovered": "info",
    "healed": "info",
    "awaiting_approval": "info",
    "degraded": "warning",
    "deletion_refused": "warning",
    "failed": "error",
    "unreachable": "error",
}
FAILING: frozenset[Kind] = frozenset({"failed", "degraded", "deletion_refused", "unreachable"})
CONTROLLER = "controller"
"""The subject of events about the controller's passes (the engine unreachable)."""
GIT = "git"
"""The subject of events about the git source (fetches failing)."""

_NOISE = (
    re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?"),
    re.compile(r"\b[0-9a-f]{12,64}\b"),
    re.compile(r"\b\d+(\.\d+)?\s?(ms|s|m|h|seconds?|minutes?)\b"),
)


@dataclass(frozen=True)
class Event:
    """Something worth telling about one app in one pass."""

    app: str
    kind: Kind
    detail: str = ""
    """For a change: the field summary ("image 1.4 → 1.5"); for a failure: its first line."""
    fingerprint: str = ""

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]


@dataclass(frozen=True)
class AppHealth:
    """What the notifier needs of an app's status after a pass."""

    health: str
    sync: str
    message: str

    @property
    def fine(self) -> bool:
        return self.health in ("Healthy", "Suspended") and self.sync == "Synced"


def fingerprint(text: str) -> str:
    """A short digest of ``text`` that ignores durations, timestamps and ids."""
    for pattern in _NOISE:
        text = pattern.sub("#", text)
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _value(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_field(f: FieldChange) -> str:
    """``image 1.4 → 1.5`` (``(unset)`` for a value missing on one side)."""
    before = "(unset)" if f.before is None else _value(f.before)
    after = "(unset)" if f.after is None else _value(f.after)
    return f"{f.path.removeprefix('spec.')} {before} → {after}"


def describe_change(change: Change) -> str:
    """A change in words: ``created``, ``deleted``, the fields of an update, the heal."""
    if change.action == "create":
        return "created"
    if change.action == "delete":
        return "deleted"
    if change.fields:
        return ", ".join(describe_field(f) for f in change.fields)
    return "; ".join(change.reasons) if change.reasons else change.action


def derive_events(
    plan: Plan,
    outcomes: Sequence[Outcome],
    health: Mapping[str, AppHealth],
    errors: Mapping[str, str] = {},
) -> list[Event]:
    """The events of one pass, by subject then kind (recoveries are the dedup's part).

    ``errors`` are failures no outcome carries, by subject: an app whose manifest or secrets
    cannot be resolved, a manifest file that does not load (subject ``file:PATH``)."""
    changes = {c.app: c for c in plan.changes}
    events: list[Event] = []
    acted: set[str] = set(errors)
    for subject, error in errors.items():
        events.append(Event(subject, "failed", first_line(error), fingerprint(error)))
    for o in outcomes:
        acted.add(o.app)
        change = changes.get(o.app)
        if not o.ok:
            line = first_line(o.message)
            events.append(Event(o.app, "failed", line, fingerprint(o.message or "")))
        elif change is not None and change.action == "heal":
            text = describe_change(change)
            events.append(Event(o.app, "healed", text, fingerprint(text)))
        elif change is not None and change.action != "route":
            text = describe_change(change)
            events.append(Event(o.app, "deployed", text, fingerprint(f"{plan.revision}{text}")))
    for change in plan.refused:
        reason = change.reasons[-1] if change.reasons else "deletion refused"
        events.append(Event(change.app, "deletion_refused", reason, fingerprint(reason)))
    for app, status in health.items():
        if status.health == "Degraded" and app not in acted and "last error" not in status.message:
            events.append(Event(app, "degraded", status.message, fingerprint(status.message)))
    return sorted(events, key=lambda e: (e.app, KINDS.index(e.kind)))


def fine_subjects(health: Mapping[str, AppHealth], events: Sequence[Event]) -> set[str]:
    """Apps that are fine after the pass: healthy, in sync, and with no failing event."""
    failing = {e.app for e in events if e.kind in FAILING}
    return {a for a, s in health.items() if s.fine and a not in failing}
