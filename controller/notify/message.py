"""One message per pass and destination: the revision, its commit subject, and each event in
a line ("web: image 1.4 → 1.5", "api: failed: ..."), cut to the destination's limit.

Pure. The plan's values reach it already masked (secrets are digests and show as ``(secret
changed)``), so a message carries no secret value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from controller.notify.events import SEVERITY_RANK, Event, Severity

_PREFIX = {
    "failed": "failed: ",
    "degraded": "degraded: ",
    "healed": "drift corrected: ",
    "deletion_refused": "",
    "unreachable": "unreachable: ",
    "awaiting_approval": "awaiting approval: ",
}


@dataclass(frozen=True)
class Notice:
    """What one pass has to tell (before a destination's filter)."""

    instance: str
    revision: str | None
    subject: str
    """The commit's subject line ("" when unknown)."""
    events: tuple[Event, ...]
    id: str = ""
    """The message's identity (a webhook's CloudEvent ``id``): the same in every attempt and
    for every destination, so a receiver can drop a retry it already has ("": a fresh one)."""
    at: float | None = None
    """When the pass told it (epoch seconds; the CloudEvent ``time``), None: when sent."""

    @property
    def severity(self) -> Severity:
        worst = max(self.events, key=lambda e: SEVERITY_RANK[e.severity])
        return worst.severity

    def only(self, kinds: frozenset[str], min_severity: str) -> Notice | None:
        """The notice with the events a destination wants; None when none is left."""
        floor = SEVERITY_RANK[min_severity]
        kept = tuple(
            e for e in self.events if e.kind in kinds and SEVERITY_RANK[e.severity] >= floor
        )
        return replace(self, events=kept) if kept else None

    def title(self) -> str:
        counts: dict[str, int] = {}
        for e in self.events:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        words = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
        at = f" at {self.revision[:12]}" if self.revision else ""
        return f"trueup/{self.instance}: {words}{at}"

    def lines(self) -> list[str]:
        return [line(e) for e in self.events]

    def body(self, limit: int = 4000) -> str:
        head = f"{(self.revision or '')[:12]} {self.subject}".strip()
        text = "\n".join(([head] if head else []) + self.lines())
        return cut(text, limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "revision": self.revision,
            "subject": self.subject,
            "severity": self.severity,
            "title": self.title(),
            "summary": "; ".join(self.lines()),
            "events": [
                {"app": e.app, "kind": e.kind, "severity": e.severity, "detail": e.detail}
                for e in self.events
            ],
        }


def line(event: Event) -> str:
    """``web: image 1.4 → 1.5``, ``api: failed: <first line>``, ``db: recovered``."""
    if event.kind == "recovered":
        return f"{event.app}: recovered" + (f" ({event.detail})" if event.detail else "")
    return f"{event.app}: {_PREFIX.get(event.kind, '')}{event.detail}"


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending with ``…`` when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def join_summary(events: Sequence[Event]) -> str:
    return "; ".join(line(e) for e in events)
