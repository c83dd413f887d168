"""``/api/v1``: the controller's status as JSON, and the one mutation, a reconcile request.

``GET /api/v1/status`` (every app, the documented status JSON plus the instance, revision and
pass count), ``GET /api/v1/apps/{name}`` (one app, its last error and transition, its backoff,
the images trueup built for it that are still on the engine and its recent actions from the
history) and ``POST /api/v1/reconcile`` (bearer API token from
``--api-token-file``; disabled without one; ``?app=NAME`` for one app, else a fetch and a full
pass). The status also says the sync mode, the approved and the pending revision, and which
apps are suspended; suspend, resume, apply and the per-app plan are ``ops.py``'s. Handlers
only read the controller's state or mark work; nothing here reconciles.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.errors import TrueupError
from controller.http.auth import bearer_ok, unauthorized
from controller.http.ops import Ops
from controller.http.webhooks import FetchCoalescer
from controller.targets.images import app_images

log = structlog.get_logger(__name__)


def iso(ts: float | None) -> str | None:
    """A wall-clock timestamp as ``2026-01-02T03:04:05Z`` (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def action_json(row: dict[str, Any]) -> dict[str, Any]:
    """One history row of ``History.actions`` as ``recent_actions`` shows it."""
    return {
        "at": iso(row["started_at"]),
        "revision": row["revision"],
        "trigger": row["trigger"],
        "action": row["kind"],
        "result": row["result"],
        "message": row["message"],
        "duration_s": round(row["duration_s"], 3),
    }


class Api:
    """The ``/api/v1`` handlers of one controller."""

    def __init__(
        self,
        controller: Controller,
        *,
        instance: str,
        fetcher: FetchCoalescer,
        api_token: bytes | None = None,
        history: History | None = None,
    ) -> None:
        self.controller = controller
        self.instance = instance
        self.fetcher = fetcher
        self.api_token = api_token
        self.history = history
        self.ops = Ops(controller, api_token=api_token, known=self._known_apps)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/status", self.get_status),
            web.get("/api/v1/apps/{name}", self.get_app),
            web.post("/api/v1/reconcile", self.reconcile),
            *self.ops.routes(),
        ]

    async def get_status(self, request: web.Request) -> web.Response:
        c = self.controller
        suspended = c.gate.overrides.suspended
        apps = c.status_json()["apps"]
        assert isinstance(apps, list)
        return web.json_response(
            {
                "instance": self.instance,
                "revision": c.last_result.revision if c.last_result else None,
                "passes": c.passes,
                "first_pass_done": c.first_pass_done.is_set(),
                "last_error": c.last_error,
                **c.gate.to_json(),
                "apps": [{**a, "suspended": a["name"] in suspended} for a in apps],
            }
        )

    async def get_app(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        tracked = self.controller.status.get(name)
        if tracked is None:
            return web.json_response({"error": f"no app named {name!r}"}, status=404)
        ago = self.controller.clock.now() - tracked.last_transition
        doc: dict[str, Any] = {
            **tracked.status.to_json(),
            "last_error": tracked.last_error,
            "last_transition": iso(time.time() - ago),
            "backoff_failures": self.controller.backoff.failures(name),
            "recent_actions": [],
        }
        try:  # the images trueup built for the app that retention kept, newest first
            doc["images"] = await app_images(self.controller.runtime, name)
        except TrueupError as exc:
            doc["images"], doc["images_error"] = [], str(exc)
        if self.history is not None:
            rows = await asyncio.to_thread(self.history.actions, name, limit=10)
            doc["recent_actions"] = [action_json(row) for row in rows]
        return web.json_response(doc)

    async def reconcile(self, request: web.Request) -> web.Response:
        if self.api_token is None:
            return web.json_response(
                {"error": "the reconcile API is disabled: start trueup run with --api-token-file"},
                status=403,
            )
        if not bearer_ok(request, self.api_token):
            return unauthorized(request, "missing or wrong bearer token")
        app = request.query.get("app")
        if app is not None and app not in self._known_apps():
            return web.json_response({"error": f"no app named {app!r}"}, status=404)
        if app is not None:
            self.controller.backoff.succeeded(app)  # asked for by a person: retry now
            self.controller.work.mark("api", app)
        else:
            self.fetcher.request(mark="api")  # fetch first, so the pass sees the newest commit
        log.info("reconcile_requested", app=app)
        return web.json_response({"accepted": True, "app": app}, status=202)

    def _known_apps(self) -> set[str]:
        c = self.controller
        known = set(c.status)
        if c.last_result is not None and c.last_result.desired is not None:
            known |= set(c.last_result.desired.apps)
        if c.gate.pending is not None:
            known |= {c.app for c in c.gate.pending.plan.changes}
        return known
