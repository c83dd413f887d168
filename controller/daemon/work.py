"""Marked work: what the controller loop's next pass acts on, and what asked for it.

Level-triggered: a trigger (a commit, an engine event, the resync timer, a retry, a request)
only marks a full pass or some apps; triggers that arrive while a pass runs coalesce into one
follow-up pass that names all of them (``trigger`` in the history: ``event:die,revision``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Work:
    """Marked work: a full pass and/or some apps, and what asked for it."""

    full: bool = False
    apps: set[str] = field(default_factory=set)
    triggers: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self, trigger: str, app: str | None = None) -> None:
        if app is None:
            self.full = True
        else:
            self.apps.add(app)
        if trigger not in self.triggers:
            self.triggers.append(trigger)
        self.wake.set()

    def take(self) -> tuple[bool, set[str], str]:
        full, apps, trigger = self.full, set(self.apps), ",".join(self.triggers) or "none"
        self.full, self.apps, self.triggers = False, set(), []
        self.wake.clear()
        return full, apps, trigger

    @property
    def pending(self) -> bool:
        return self.full or bool(self.apps)
