"""The kinds of notification event: one list for the notifier (``events``) and for the
``notifications.destinations[].events`` setting that filters them. No imports beyond typing,
so the settings read it without loading the notifier."""

from __future__ import annotations

from typing import Literal

Kind = Literal[
    "deployed", "failed", "degraded", "recovered", "healed", "deletion_refused", "unreachable",
    "awaiting_approval",
]  # fmt: skip
KINDS: tuple[Kind, ...] = (
    "deployed", "failed", "degraded", "recovered", "healed", "deletion_refused", "unreachable",
    "awaiting_approval",
)  # fmt: skip
