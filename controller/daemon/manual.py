"""``sync: auto`` or ``sync: manual``: which revision a pass applies, and the pending one.

In auto mode a pass applies the branch tip, and the revision it applied is recorded as the
approved one (so switching to manual mode keeps healing what runs). In manual mode a pass
applies the *approved* revision (kept in ``overrides.json``: a restart never applies anything
new by surprise) and only plans the tip: when the tip differs, its dry-run plan is the
*pending* revision, shown by the API, the dashboard and `trueup status`, until an authorised
``POST /api/v1/apply`` names it (:meth:`SyncGate.approve`; a stale revision is refused). With
nothing approved yet (a first start in manual mode), nothing is applied: the apps are left as
they run (never pruned) until the first approval.

:class:`SyncGate` is the state machine (no I/O but the overrides file); :func:`gated_pass` is
the pass the controller loop runs in manual mode; :func:`plan_only` is the dry run both use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import structlog

from controller.daemon.overrides import Overrides, suspend_plan
from controller.daemon.status import AppStatus
from controller.manifests.problems import Problem
from controller.planning import Plan
from controller.reconciler import PassResult, PlanFilter, Reconciler

log = structlog.get_logger(__name__)

SUBJECT_MAX = 200
"""Characters of a commit subject shown with the pending revision."""
SyncMode = Literal["auto", "manual"]
Approval = Literal["accepted", "automatic", "nothing_pending", "stale"]


@dataclass(frozen=True)
class Pending:
    """A revision planned but not applied (manual mode): what applying it would do."""

    revision: str
    subject: str
    planned_at: float
    """Wall-clock time of the plan."""
    plan: Plan
    problems: tuple[Problem, ...]

    @property
    def apps(self) -> list[str]:
        """The apps the plan changes (refused deletes included), sorted."""
        return sorted({c.app for c in (*self.plan.changes, *self.plan.refused)})

    def to_json(self) -> dict[str, object]:
        return {
            "revision": self.revision,
            "subject": self.subject,
            "planned_at": datetime.fromtimestamp(self.planned_at, UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "apps": self.apps,
        }


class SyncGate:
    """The sync mode, the approved revision (in ``overrides``) and the pending one."""

    def __init__(self, mode: SyncMode = "auto", overrides: Overrides | None = None) -> None:
        self.mode: SyncMode = mode
        self.overrides = overrides if overrides is not None else Overrides()
        self.pending: Pending | None = None

    @property
    def manual(self) -> bool:
        return self.mode == "manual"

    @property
    def approved(self) -> str | None:
        return self.overrides.approved

    def applied(self, revision: str | None) -> None:
        """Auto mode: ``revision`` was applied, so it is the approved one from now on."""
        if self.manual or revision is None:
            return
        try:
            self.overrides.set_approved(revision)
        except OSError as exc:  # kept in memory; the next pass tries again
            self.overrides.approved = revision
            log.error("overrides_write_failed", error=str(exc))

    def planned(self, tip: str, pending: Pending | None) -> None:
        """The tip was planned (``pending``), or is the approved revision (None)."""
        before = self.pending.revision if self.pending else None
        self.pending = pending
        if pending is not None and pending.revision != before:
            log.info("revision_pending", revision=tip, apps=pending.apps)

    def adopt(self, revision: str) -> None:
        """Manual mode: ``revision``'s plan against what runs is empty (no change, no
        manifest problem, nothing suspended held back), so it is approved without asking:
        approving it would change nothing. A failure to save is logged (kept in memory)."""
        self.pending = None
        if revision == self.approved:
            return
        try:
            self.overrides.set_approved(revision)
        except OSError as exc:
            self.overrides.approved = revision
            log.error("overrides_write_failed", error=str(exc))
        log.info("revision_adopted", revision=revision)

    def approve(self, revision: str, tip: str | None) -> Approval:
        """An apply request for ``revision`` while the branch tip is ``tip``: accepted only
        when it names the pending revision and no newer commit arrived since it was planned.
        Raises ``OSError`` when the approval cannot be saved (it is then not in force)."""
        if not self.manual:
            return "automatic"
        pending = self.pending
        if pending is None:
            return "nothing_pending"
        if revision != pending.revision or (tip is not None and tip != pending.revision):
            return "stale"
        self.overrides.set_approved(revision)
        self.pending = None
        log.info("revision_approved", revision=revision)
        return "accepted"

    def to_json(self) -> dict[str, object]:
        """What the status API and ``status.json`` say of the sync mode and the overrides."""
        return {
            "sync": self.mode,
            "suspended": sorted(self.overrides.suspended),
            "approved_revision": self.approved,
            "pending": self.pending.to_json() if self.pending is not None else None,
        }

    def overlay(self, statuses: Sequence[AppStatus]) -> list[AppStatus]:
        """Statuses with every app the pending revision changes shown ``OutOfSync``."""
        waiting = set(self.pending.apps) if self.pending is not None else set()
        if not waiting:
            return list(statuses)
        assert self.pending is not None
        note = f"; revision {self.pending.revision[:12]} waits for approval"
        return [
            replace(s, sync="OutOfSync", message=s.message + note) if s.name in waiting else s
            for s in statuses
        ]


async def plan_only(
    reconciler: Reconciler, rev: str | None, *, prune: bool, allow_empty: bool
) -> PassResult:
    """A dry run of ``rev`` against what runs: nothing is built, pushed or changed; one
    observation of the engine. Suspended apps keep their changes here (what resuming them
    would do); whoever shows or applies the plan leaves them out."""
    return await reconciler.run_pass(rev=rev, apply=False, prune=prune, allow_empty=allow_empty)


async def gated_pass(
    reconciler: Reconciler,
    gate: SyncGate,
    narrow: PlanFilter,
    *,
    prune: bool,
    allow_empty: bool,
) -> PassResult:
    """The controller loop's pass. Auto mode: apply the branch tip (narrowed by ``narrow``)
    and record it as approved. Manual mode: apply the approved revision, then plan the tip
    as the pending revision when it differs; with nothing approved only the plan, whose
    result carries no revision (nothing of it was applied)."""
    if not gate.manual:
        result = await reconciler.run_pass(prune=prune, allow_empty=allow_empty, plan_filter=narrow)
        gate.applied(result.revision)
        return result
    tip = (await asyncio.to_thread(reconciler.source.resolve, None)).sha
    approved = gate.approved
    applied: PassResult | None = None
    failed: Exception | None = None
    if approved is not None:
        try:
            applied = await reconciler.run_pass(
                rev=approved, prune=prune, allow_empty=allow_empty, plan_filter=narrow
            )
        except Exception as exc:  # the tip is still planned: approving it is the way out
            failed = exc
    dry = None
    if tip == approved:
        gate.planned(tip, None)
    else:
        dry = await _plan_pending(reconciler, gate, tip, prune, allow_empty, must=approved is None)
    if failed is not None:
        raise failed
    if applied is not None:
        return applied
    assert dry is not None
    return replace(dry, revision=None)


async def _plan_pending(
    reconciler: Reconciler, gate: SyncGate, tip: str, prune: bool, allow_empty: bool, must: bool
) -> PassResult | None:
    """Plan ``tip`` as the pending revision; a failure is raised when ``must`` (nothing
    else ran), else logged (the previous pending plan stays)."""
    try:
        dry = await plan_only(reconciler, tip, prune=prune, allow_empty=allow_empty)
    except Exception as exc:
        if must:
            raise
        log.warning("pending_plan_failed", revision=tip, error=str(exc))
        return None
    if dry.plan.in_sync and not dry.problems:
        gate.adopt(tip)  # nothing to approve: it is what runs
    else:
        subject = await asyncio.to_thread(reconciler.source.commit_subject, tip)
        planned = Pending(tip, subject[:SUBJECT_MAX], time.time(), dry.plan, tuple(dry.problems))
        gate.planned(tip, planned)
    if dry.desired is None:
        return dry
    return replace(dry, plan=suspend_plan(dry.plan, dry.desired, gate.overrides.suspended))
