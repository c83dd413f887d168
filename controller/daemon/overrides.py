"""Runtime overrides of one controller, kept in ``<state-dir>/overrides.json``.

Two things an operator decides at run time, not in git, that must survive a restart: the apps
suspended by hand (``trueup suspend APP``, ``POST /api/v1/apps/NAME/suspend``) and, for
``sync: manual``, the approved revision (the last one applied; healing keeps applying it).
The file is replaced atomically (a temporary file, fsync, rename), so a crash leaves the old
or the new content, never half of one. `trueup run` holds the state dir's lock and is the only
writer while it runs; the CLI edits the file under that lock when no controller runs.

:func:`suspend_plan` is the pure part: a plan with the suspended apps' changes left out and
listed as skipped with the reason (a change held back keeps the app ``OutOfSync``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from controller.desired.resolve import DesiredState
from controller.errors import ConfigError
from controller.planning import Plan, Skip

log = structlog.get_logger(__name__)

OVERRIDES_FILE = "overrides.json"
SUSPENDED = "suspended: reconcile leaves this app alone (trueup resume APP)"
SUSPENDED_HELD = "held: suspended, changes wait until it is resumed (trueup resume APP)"


@dataclass
class Overrides:
    """The suspended apps and the approved revision, as loaded from and saved to one file."""

    path: Path | None = None
    """Where they are kept (None: in memory only, as in tests)."""
    suspended: set[str] = field(default_factory=set)
    approved: str | None = None

    @classmethod
    def load(cls, state_dir: Path) -> Overrides:
        """The state dir's overrides (none when the file does not exist); a file that is not
        one is a ``ConfigError`` naming it (guessing could resume an app by surprise)."""
        path = state_dir / OVERRIDES_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            doc = json.loads(text)
            suspended = doc.get("suspended", [])
            approved = doc.get("approved_revision")
            if not isinstance(suspended, list) or not all(isinstance(a, str) for a in suspended):
                raise ValueError("suspended must be a list of app names")
            if approved is not None and not isinstance(approved, str):
                raise ValueError("approved_revision must be a string")
        except (ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{path} is not a trueup overrides file ({exc}); fix or remove it"
            ) from exc
        return cls(path, set(suspended), approved)

    def to_json(self) -> dict[str, object]:
        return {"suspended": sorted(self.suspended), "approved_revision": self.approved}

    def save(self) -> None:
        """Replace the file atomically; an ``OSError`` is raised (the caller says it failed)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)

    def set_suspended(self, app: str, suspended: bool) -> bool:
        """Suspend or resume ``app`` and save; True when that changed anything."""
        if (app in self.suspended) == suspended:
            return False
        before = set(self.suspended)
        if suspended:
            self.suspended.add(app)
        else:
            self.suspended.discard(app)
        try:
            self.save()
        except OSError:
            self.suspended = before  # not kept, so not in force either
            raise
        log.info("app_suspended" if suspended else "app_resumed", app=app)
        return True

    def set_approved(self, revision: str | None) -> None:
        """Record ``revision`` as approved (saved when it changed)."""
        if revision == self.approved:
            return
        before, self.approved = self.approved, revision
        try:
            self.save()
        except OSError:
            self.approved = before
            raise


def suspend_plan(plan: Plan, desired: DesiredState, suspended: set[str]) -> Plan:
    """``plan`` without the changes of ``suspended`` apps (no create, update, heal, delete or
    route change): each is listed as skipped, ``held:`` when a change waits for it."""
    if not suspended:
        return plan
    changed = {c.app for c in plan.changes if c.app in suspended}
    listed = {s.app for s in plan.skipped}
    skipped = [*plan.skipped, *(Skip(a, SUSPENDED_HELD, True, waiting=True) for a in changed)]
    skipped += [Skip(a, SUSPENDED, True) for a in suspended - changed - listed if a in desired.apps]
    return replace(
        plan,
        changes=tuple(c for c in plan.changes if c.app not in suspended),
        skipped=tuple(sorted(skipped, key=lambda s: s.app)),
    )
