"""The operator's actions on ``/api/v1``: suspend and resume an app, approve a revision, and
read an app's pending plan.

``POST /api/v1/apps/{name}/suspend`` / ``.../resume`` (200 ``{"app", "suspended"}``) set the
runtime override of ``overrides.py`` (kept in the state dir; a resume marks the app for a
pass at once). ``POST /api/v1/apply`` with ``{"revision": "<full sha>"}`` approves the
pending revision in manual mode (202, and a pass runs); 409 with the pending revision when
the request names another one or a newer commit arrived, 409 in auto mode, 400 when nothing
is pending or the body is not that JSON. ``GET /api/v1/apps/{name}/plan`` is ``plans.py``.

Every mutation needs the API token (``--api-token-file``), checked before any body is read:
403 when none is configured, 401 without it or with a wrong one; then 404 for an unknown
app. An apply body is read only up to :data:`MAX_BODY` bytes (413 beyond), within
:data:`BODY_TIMEOUT_S` (408).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import structlog
from aiohttp import web

from controller.daemon.loop import Controller
from controller.errors import TrueupError
from controller.http.auth import bearer_ok, unauthorized
from controller.http.plans import PlanView, app_plan_json

log = structlog.get_logger(__name__)

MAX_BODY = 4096
BODY_TIMEOUT_S = 10.0
FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


class Ops:
    """The handlers; ``known`` says which app names exist (status, desired state)."""

    def __init__(
        self, controller: Controller, *, api_token: bytes | None, known: Callable[[], set[str]]
    ) -> None:
        self.controller = controller
        self.api_token = api_token
        self.known = known
        self.plans = PlanView(controller)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/apps/{name}/suspend", self.suspend),
            web.post("/api/v1/apps/{name}/resume", self.resume),
            web.post("/api/v1/apply", self.apply),
            web.get("/api/v1/apps/{name}/plan", self.get_plan),
        ]

    def _refused(self, request: web.Request) -> web.Response | None:
        """403 without a configured token, 401 without the right one; None when allowed."""
        if self.api_token is None:
            return web.json_response(
                {"error": "the API's actions are disabled: start trueup run with --api-token-file"},
                status=403,
            )
        if not bearer_ok(request, self.api_token):
            return unauthorized(request, "missing or wrong bearer token")
        return None

    async def suspend(self, request: web.Request) -> web.Response:
        return await self._set_suspended(request, True)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._set_suspended(request, False)

    async def _set_suspended(self, request: web.Request, suspended: bool) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        name = request.match_info["name"]
        c = self.controller
        if name not in self.known() and name not in c.gate.overrides.suspended:
            return web.json_response({"error": f"no app named {name!r}"}, status=404)
        try:
            changed = c.gate.overrides.set_suspended(name, suspended)
        except OSError as exc:
            log.error("overrides_write_failed", error=str(exc))
            return web.json_response(
                {"error": f"cannot save the override in the state dir: {exc}"}, status=503
            )
        if changed or not suspended:
            if not suspended:
                c.backoff.succeeded(name)  # asked for by a person: apply now
            c.work.mark("resume" if not suspended else "suspend", name)
        return web.json_response({"app": name, "suspended": suspended})

    async def apply(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        gate = self.controller.gate
        if not gate.manual:
            return web.json_response({"error": "sync is automatic"}, status=409)
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": f"body over {MAX_BODY} bytes"}, status=413)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await _bounded_body(request)
        except TimeoutError:
            return web.json_response({"error": "the body did not arrive in time"}, status=408)
        if len(body) > MAX_BODY:
            return web.json_response({"error": f"body over {MAX_BODY} bytes"}, status=413)
        revision = _revision(body)
        if revision is None:
            return web.json_response(
                {"error": 'expected a JSON body {"revision": "<full commit sha>"}'}, status=400
            )
        try:
            return self._approve(revision, await self._tip())
        except OSError as exc:
            log.error("overrides_write_failed", error=str(exc))
            return web.json_response(
                {"error": f"cannot save the approval in the state dir: {exc}"}, status=503
            )

    def _approve(self, revision: str, tip: str | None) -> web.Response:
        gate = self.controller.gate
        pending = gate.pending.to_json() if gate.pending is not None else None
        answer = gate.approve(revision, tip)
        if answer == "nothing_pending":
            return web.json_response({"error": "no revision is pending"}, status=400)
        if answer == "stale":
            if tip is not None and pending is not None and tip != pending["revision"]:
                self.controller.work.mark("revision")  # plan the newer commit now
            return web.json_response(
                {"error": "stale revision: it is not the pending one", "pending": pending},
                status=409,
            )
        log.info("apply_requested", revision=revision)
        self.controller.work.mark("apply")
        return web.json_response({"accepted": True, "revision": revision}, status=202)

    async def _tip(self) -> str | None:
        """The newest revision the watcher saw (None without a watcher)."""
        watcher = self.controller.watcher
        return watcher.latest.sha if watcher is not None and watcher.latest else None

    async def get_plan(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.known():
            return web.json_response({"error": f"no app named {name!r}"}, status=404)
        try:
            planned = await self.plans.current()
        except TrueupError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        plan, problems = planned if planned is not None else (None, ())
        suspended = name in self.controller.gate.overrides.suspended
        return web.json_response(app_plan_json(plan, problems, name, suspended=suspended))


async def _bounded_body(request: web.Request) -> bytes:
    """The body, read up to one byte past :data:`MAX_BODY` (so a longer one is told apart)."""
    body = bytearray()
    while len(body) <= MAX_BODY:
        chunk = await request.content.read(MAX_BODY + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _revision(body: bytes) -> str | None:
    """The ``revision`` of an apply body when it is a full lower-case commit sha."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    revision = doc.get("revision") if isinstance(doc, dict) else None
    if not isinstance(revision, str) or not FULL_SHA.match(revision):
        return None
    return revision
