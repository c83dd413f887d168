"""The audit log: every pass and every action, in SQLite under the state dir (WAL mode).

Written by the controller loop after each pass, read by `trueup history`. Retention is
bounded: only the newest ``keep`` passes (and their actions) are kept. A file SQLite cannot
open is a ``ConfigError`` naming it. Standard library only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS passes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    revision TEXT,
    trigger TEXT NOT NULL,
    result TEXT NOT NULL,
    changes INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pass_id INTEGER NOT NULL REFERENCES passes(id) ON DELETE CASCADE,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    result TEXT NOT NULL,
    message TEXT NOT NULL,
    duration_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_app ON actions(app, id);
CREATE TABLE IF NOT EXISTS pass_plans (
    pass_id INTEGER PRIMARY KEY REFERENCES passes(id) ON DELETE CASCADE,
    plan TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_state (
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (subject, kind)
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sent_at REAL NOT NULL,
    destination TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""
"""``notify_state``: what the notifier last sent per (subject, kind), and commit statuses
posted (subject ``status:<sha>``), so a restart sends nothing new. ``notifications``: every
delivery's result. ``pass_plans``: the changes a pass planned (JSON, as the dashboard's
``/passes/ID`` shows them), only for passes that planned any. ``CREATE ... IF NOT EXISTS``
adds them to a database of an older version."""

PLAN_MAX = 262144
"""Characters of a pass's plan JSON kept; a longer plan is cut to its headlines."""


@dataclass(frozen=True)
class ActionRecord:
    """One change applied to one app during a pass."""

    app: str
    kind: str
    result: str
    message: str
    duration_s: float


@dataclass(frozen=True)
class PassRecord:
    """One reconcile pass."""

    started_at: float
    duration_s: float
    revision: str | None
    trigger: str
    result: str
    changes: int
    failed: int
    message: str = ""


class History:
    """The SQLite history of one state dir; safe to share between threads."""

    def __init__(self, path: Path, *, keep: int = 5000) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        self._db = _open(path)
        self._writes = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(
        self,
        record: PassRecord,
        actions: Iterable[ActionRecord],
        plan: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Store one pass, its actions and (when it planned changes) its plan atomically;
        return the pass id."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO passes (started_at, duration_s, revision, trigger, result, changes,"
                " failed, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.started_at,
                    record.duration_s,
                    record.revision,
                    record.trigger,
                    record.result,
                    record.changes,
                    record.failed,
                    record.message,
                ),
            )
            pass_id = int(cursor.lastrowid or 0)
            self._db.executemany(
                "INSERT INTO actions (pass_id, app, kind, result, message, duration_s)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(pass_id, a.app, a.kind, a.result, a.message, a.duration_s) for a in actions],
            )
            if plan:
                self._db.execute(
                    "INSERT INTO pass_plans (pass_id, plan) VALUES (?, ?)",
                    (pass_id, plan_text(plan)),
                )
            self._writes += 1
            if self._writes % 50 == 1:
                self._trim()
            return pass_id

    def notify_state(self) -> dict[tuple[str, str], tuple[str, float]]:
        """(subject, kind) -> (fingerprint, sent_at) of everything the notifier keeps."""
        with self._lock:
            rows = self._db.execute(
                "SELECT subject, kind, fingerprint, sent_at FROM notify_state"
            ).fetchall()
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}

    def update_notify_state(
        self, put: dict[tuple[str, str], tuple[str, float]], drop: Iterable[tuple[str, str]]
    ) -> None:
        """Keep ``put`` and forget ``drop`` atomically."""
        with self._lock, self._db:
            self._db.executemany(
                "DELETE FROM notify_state WHERE subject = ? AND kind = ?", list(drop)
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO notify_state (subject, kind, fingerprint, sent_at)"
                " VALUES (?, ?, ?, ?)",
                [(k[0], k[1], v[0], v[1]) for k, v in put.items()],
            )
            self._db.execute(  # commit statuses are kept 30 days: enough never to repeat one
                "DELETE FROM notify_state WHERE subject LIKE 'status:%'"
                " AND sent_at < (SELECT MAX(sent_at) FROM notify_state) - 2592000"
            )

    def record_notification(
        self, sent_at: float, destination: str, result: str, detail: str
    ) -> None:
        """One delivery's result (``ok``, ``failed``, ``dropped``), newest ``keep`` kept."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO notifications (sent_at, destination, result, detail)"
                " VALUES (?, ?, ?, ?)",
                (sent_at, destination, result, detail[:500]),
            )
            self._db.execute(
                "DELETE FROM notifications WHERE id <= (SELECT MAX(id) FROM notifications) - ?",
                (self.keep,),
            )

    def notifications(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest deliveries first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sent_at, destination, result, detail FROM notifications"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("sent_at", "destination", "result", "detail")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def _trim(self) -> None:
        row = self._db.execute(
            "SELECT id FROM passes ORDER BY id DESC LIMIT 1 OFFSET ?", (self.keep,)
        ).fetchone()
        if row is not None:
            self._db.execute("DELETE FROM actions WHERE pass_id <= ?", (row[0],))
            self._db.execute("DELETE FROM pass_plans WHERE pass_id <= ?", (row[0],))
            self._db.execute("DELETE FROM passes WHERE id <= ?", (row[0],))

    def passes(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest passes first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, started_at, duration_s, revision, trigger, result, changes, failed,"
                " message FROM passes ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("id", "started_at", "duration_s", "revision", "trigger", "result", "changes",
                "failed", "message")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def actions(self, app: str | None = None, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest actions first, of one app or of all."""
        query = (
            "SELECT a.id, a.pass_id, p.started_at, p.revision, p.trigger, a.app, a.kind,"
            " a.result, a.message, a.duration_s FROM actions a JOIN passes p ON p.id = a.pass_id"
        )
        args: tuple[Any, ...] = ()
        if app is not None:
            query += " WHERE a.app = ?"
            args = (app,)
        query += " ORDER BY a.id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        keys = ("id", "pass_id", "started_at", "revision", "trigger", "app", "kind", "result",
                "message", "duration_s")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def pass_detail(self, pass_id: int) -> dict[str, Any] | None:
        """One pass with its ``actions`` (in the order applied) and its ``plan`` (a list of
        changes; empty when it planned none); None when it is not (or no longer) kept."""
        found = [p for p in self._passes("WHERE id = ?", (pass_id,), 1) if p["id"] == pass_id]
        if not found:
            return None
        detail = found[0]
        with self._lock:
            rows = self._db.execute(
                "SELECT app, kind, result, message, duration_s FROM actions WHERE pass_id = ?"
                " ORDER BY id",
                (pass_id,),
            ).fetchall()
            plan = self._db.execute(
                "SELECT plan FROM pass_plans WHERE pass_id = ?", (pass_id,)
            ).fetchone()
        keys = ("app", "kind", "result", "message", "duration_s")
        detail["actions"] = [dict(zip(keys, row, strict=True)) for row in rows]
        detail["plan"] = json.loads(plan[0]) if plan else []
        return detail

    def last_actions(self) -> dict[str, dict[str, Any]]:
        """Each app's newest action (``pass_id``, ``started_at``, ``kind``, ``result``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT a.app, a.pass_id, p.started_at, a.kind, a.result FROM actions a"
                " JOIN passes p ON p.id = a.pass_id"
                " WHERE a.id IN (SELECT MAX(id) FROM actions GROUP BY app)"
            ).fetchall()
        keys = ("pass_id", "started_at", "kind", "result")
        return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in rows}

    def _passes(self, where: str, args: tuple[Any, ...], limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, started_at, duration_s, revision, trigger, result, changes, failed,"
                f" message FROM passes {where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        keys = ("id", "started_at", "duration_s", "revision", "trigger", "result", "changes",
                "failed", "message")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]


def plan_text(plan: Sequence[Mapping[str, Any]]) -> str:
    """A plan as the JSON kept for it: whole when under :data:`PLAN_MAX`, else each change's
    headline (app, action, reasons) only."""
    text = json.dumps(list(plan), ensure_ascii=False, default=str)
    if len(text) <= PLAN_MAX:
        return text
    heads = [{k: c.get(k) for k in ("app", "action", "reasons")} for c in plan]
    while len(text := json.dumps(heads, ensure_ascii=False, default=str)) > PLAN_MAX:
        heads = heads[: len(heads) // 2]
    return text


def _open(path: Path) -> sqlite3.Connection:
    """The history database at ``path``, created with its schema when new; ``ConfigError``
    naming the file when it cannot be (not a database, a directory, no permission)."""
    db: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
    except (OSError, sqlite3.Error) as exc:
        if db is not None:
            db.close()
        raise ConfigError(f"cannot open the history {path}: {exc}") from exc
    return db
