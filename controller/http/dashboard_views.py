"""What the dashboard's pages show, built from the controller's state (no I/O but the commit
subjects, read off the event loop): the overview of ``/`` and ``/api/v1/overview``, one
replica's row, one pass of the history. Times are wall-clock seconds, shown in UTC."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from controller.daemon.loop import Controller
from controller.runtime.base import ContainerInfo

SUBJECTS_KEPT = 256
SUBJECT_MAX = 200
"""Characters of a commit subject shown (whoever commits writes it)."""


def when(ts: float | None) -> str:
    """``2026-01-02 03:04:05Z``, or ``-``."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def short(revision: str | None) -> str:
    return (revision or "-")[:12]


def _dt(value: datetime | None) -> float | None:
    if value is None or value.year < 2000:  # the engine's "never" is year 1
        return None
    return value.timestamp()


def overview(
    controller: Controller, instance: str, last_actions: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The controller and every app as ``/`` shows them; ``subject`` fields are filled by
    `Subjects.fill`. With the sync gate's ``sync``, ``approved_revision``, ``pending`` and
    ``suspended``, as ``/api/v1/status`` has them."""
    c = controller
    feed = c.feed
    watcher = c.watcher
    latest = watcher.latest if watcher is not None else None
    status = c.status_json()
    suspended = c.gate.overrides.suspended
    apps = []
    for row in status.get("apps", []):  # type: ignore[attr-defined]
        name = row["name"]
        tracked = c.status.get(name)
        app = dict(row)
        if name in feed.in_progress:
            app["health"], app["sync"] = "Progressing", "OutOfSync"
        app["last_error"] = tracked.last_error if tracked is not None else None
        app["last_change"] = dict(last_actions.get(name, {})) or None
        app["subject"] = None
        app["suspended"] = name in suspended
        apps.append(app)
    revision = c.last_result.revision if c.last_result else feed.revision
    doc: dict[str, Any] = {k: v for k, v in status.items() if k != "apps"}
    doc.update(c.gate.to_json())
    doc.update(
        {
            "instance": instance,
            "revision": revision,
            "subject": None,
            "branch": latest.branch if latest is not None else None,
            "fetched": latest.sha if latest is not None else None,
            "fetched_at": watcher.fetched_at if watcher is not None else None,
            "fetch_error": str(watcher.error) if watcher and watcher.error else None,
            "running": feed.running,
            "pass_started_at": feed.pass_started_at if feed.running else None,
            "last_pass": feed.last_pass,
            "passes": c.passes,
            "last_error": c.last_error,
            "event_id": feed.hub.last_id,
            "apps": sorted(apps, key=lambda a: a["name"]),
        }
    )
    return doc


class Subjects:
    """Commit subjects by sha, read off the event loop and kept (newest ``SUBJECTS_KEPT``)."""

    def __init__(self, subject_of: Callable[[str], str] | None) -> None:
        self.subject_of = subject_of
        self._kept: OrderedDict[str, str] = OrderedDict()

    async def get(self, sha: str | None) -> str | None:
        if sha is None or self.subject_of is None:
            return None
        if sha not in self._kept:
            subject = await asyncio.to_thread(self.subject_of, sha)
            self._kept[sha] = subject[:SUBJECT_MAX]
            while len(self._kept) > SUBJECTS_KEPT:
                self._kept.popitem(last=False)
        return self._kept[sha]

    async def fill(self, doc: dict[str, Any]) -> None:
        """Set ``subject`` of the overview and of each app from its ``revision``."""
        doc["subject"] = await self.get(doc.get("revision"))
        for app in doc["apps"]:
            app["subject"] = await self.get(app.get("revision"))
        pending = doc.get("pending")
        if isinstance(pending, dict) and not pending.get("subject"):
            pending["subject"] = await self.get(pending.get("revision"))


def replica_json(listed: ContainerInfo, inspected: ContainerInfo) -> dict[str, Any]:
    """One replica's row: what the list said, with started and restarts from an inspect."""
    return {
        "container": listed.name,
        "id": listed.id[:12],
        "replica": listed.replica,
        "state": inspected.state,
        "health": inspected.health or "-",
        "started_at": _dt(inspected.started_at),
        "restarts": inspected.restart_count,
        "image": listed.image,
        "status": listed.status,
    }


def unknown_app(name: str) -> dict[str, Any]:
    """An app the controller knows of but has no status for yet."""
    return {
        "name": name,
        "sync": "Unknown",
        "health": "Unknown",
        "revision": None,
        "subject": None,
        "replicas": {"desired": 0, "ready": 0},
        "message": "",
        "last_error": None,
        "last_change": None,
    }


def pass_view(found: dict[str, Any], subject: str | None) -> dict[str, Any]:
    """One pass of ``History.pass_detail`` as ``/passes/ID`` shows it: each planned change
    beside its outcome."""
    outcomes = {a["app"]: a for a in found["actions"]}
    plan = []
    for change in found["plan"]:
        plan.append({**change, "outcome": outcomes.get(change.get("app"))})
    planned = {c.get("app") for c in found["plan"]}
    extra = [a for a in found["actions"] if a["app"] not in planned]
    return {**found, "subject": subject, "changes": plan, "unplanned": extra}
