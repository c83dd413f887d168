"""``GET /api/v1/apps/{name}/plan``: what the next apply would do to one app.

In manual mode, the pending revision's plan (made by the pass that found it, after that
pass's own apply, so it is the pending revision against what runs). Otherwise (auto mode, or
manual mode with nothing pending) a dry run of the revision the loop applies (the branch tip;
the approved revision in manual mode) against what runs now: one observation of the engine
and no build, push or change, made at most once per pass and tip however many pages ask
(concurrent requests share it). A suspended app's plan shows what resuming it would do,
with the reason it is held. The lines are `trueup diff`'s (``cli/render.field_lines``,
so secrets only ever show as ``(secret changed)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from controller.cli.render import field_lines
from controller.daemon.loop import Controller
from controller.daemon.manual import plan_only
from controller.daemon.overrides import SUSPENDED, SUSPENDED_HELD
from controller.manifests.problems import Problem
from controller.planning import Change, Plan

Planned = tuple[Plan, tuple[Problem, ...]]


def change_json(change: Change) -> dict[str, object]:
    """One change as the plan endpoint shows it."""
    return {
        "action": change.action,
        "summary": "; ".join(change.reasons),
        "diff": field_lines(change),
    }


def app_plan_json(
    plan: Plan | None, problems: Sequence[Problem], app: str, *, suspended: bool = False
) -> dict[str, object]:
    """``{"revision", "in_sync", "changes", "skipped", "errors"}`` of ``app`` in ``plan``
    (None: nothing to plan yet, as in manual mode before anything is approved or pending).
    ``changes`` are what applying the revision does to the app (for a ``suspended`` one:
    what resuming it would do); ``skipped`` why the plan leaves the app alone (suspended,
    invalid, held), else null; ``errors`` the pass's manifest problems
    (``FILE:LINE:COL: message``)."""
    if plan is None:
        return {"revision": None, "in_sync": True, "changes": [], "skipped": None, "errors": []}
    changes = [c for c in (*plan.changes, *plan.refused) if c.app == app]
    skipped = next((s.reason for s in plan.skipped if s.app == app), None)
    if suspended:
        skipped = SUSPENDED_HELD if changes else SUSPENDED
    return {
        "revision": plan.revision,
        "in_sync": not changes,
        "changes": [change_json(c) for c in changes],
        "skipped": skipped,
        "errors": [f"{p.file}:{p.line}:{p.column}: {p.message}" for p in problems],
    }


class PlanView:
    """The plans the API shows, dry runs memoised per (pass count, tip, mode)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._memo: tuple[object, Planned] | None = None
        self._lock = asyncio.Lock()
        self.dry_runs = 0
        """How many dry runs were made (tests count the engine's work with it)."""

    async def current(self) -> Planned | None:
        """The plan the next apply follows; raises ``TrueupError`` when git or the engine
        cannot be read."""
        c = self.controller
        gate = c.gate
        if gate.manual and gate.pending is not None:
            return gate.pending.plan, gate.pending.problems
        if gate.manual and gate.approved is None:
            return None
        rev = gate.approved if gate.manual else None
        latest = c.watcher.latest.sha if c.watcher is not None and c.watcher.latest else None
        key = (c.passes, latest, rev)
        async with self._lock:
            if self._memo is not None and self._memo[0] == key:
                return self._memo[1]
            result = await plan_only(c.reconciler, rev, prune=c.prune, allow_empty=c.allow_empty)
            self.dry_runs += 1
            planned = (result.plan, tuple(result.problems))
            self._memo = (key, planned)
            return planned
