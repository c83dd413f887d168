"""What the controller keeps per app between passes, and the status file it writes.

:func:`track` carries an app's last error and last transition time across passes: a change of
sync or health is a transition (now); an unchanged one keeps the time and the last error.
``status.json`` in the state dir is what `trueup status` reads from a running controller
(its pid, the revision, the API address, the last error and every app's status); it is
replaced atomically, and a failure to write it is logged, never raised.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from controller.daemon.status import AppStatus

log = structlog.get_logger(__name__)


@dataclass
class TrackedStatus:
    status: AppStatus
    last_error: str | None
    last_transition: float


def track(
    previous: TrackedStatus | None, status: AppStatus, error: str | None, now: float
) -> TrackedStatus:
    """``status`` as of ``now``, given what was tracked before: the transition time moves
    when sync or health changed; the last error stays while nothing changed."""
    changed = previous is None or (previous.status.sync, previous.status.health) != (
        status.sync,
        status.health,
    )
    return TrackedStatus(
        status,
        error or (previous.last_error if previous and not changed else None),
        now if changed or previous is None else previous.last_transition,
    )


def status_document(
    apps: list[dict[str, object]],
    *,
    revision: str | None,
    api: str | None,
    last_error: str | None,
) -> dict[str, object]:
    """The content of ``status.json``."""
    return {
        "pid": os.getpid(),
        "written_at": time.time(),
        "revision": revision,
        "api": api,
        "last_error": last_error,
        "apps": apps,
    }


def write_status_file(path: Path, doc: dict[str, object]) -> None:
    """Replace ``path`` with ``doc`` (write a temporary file, then rename); log a failure."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # a full or vanished state dir: status is an aid, keep going
        log.error("status_write_failed", path=str(path), error=str(exc))
