"""The dashboard of `trueup run`: server-rendered pages, their JSON, and the files they load.

Pages (jinja2 templates under ``templates/``, autoescaped: app names, commit subjects and log
lines come from whoever can commit): ``/`` (every app: sync, health, replicas, revision and
commit subject, last change, last error; the controller's revision, branch, last fetch and
whether a pass runs), ``/apps/{name}`` (the pending plan, replicas, recent actions, live
logs, and the Sync now / Suspend / Resume buttons) and ``/passes/{id}`` (one pass of the
history: trigger, revision, plan, each outcome). ``/static/*`` serves the one script and the
one stylesheet from the package (no CDN, no external font: it works air-gapped). JSON for the
pages' live parts: ``GET /api/v1/overview`` (what ``/`` shows) and
``GET /api/v1/apps/{name}/replicas`` (one inspect per replica: state, health, started,
restarts). The live streams are ``dashboard_streams.py``; building the pages' data is
``dashboard_views.py``.

Actions are the API's (``api.py`` and the i18 endpoints): the page's script sends the token the
operator typed (kept in ``sessionStorage``) as ``Authorization: Bearer``; no cookie is ever
set, so no other site can make the browser act. Every page carries a Content-Security-Policy
that allows only the controller's own script and stylesheet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from importlib import resources
from typing import Any

import jinja2
import structlog
from aiohttp import web

from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.errors import TrueupError
from controller.http import dashboard_views as views
from controller.http.api import action_json
from controller.http.dashboard_streams import Streams

log = structlog.get_logger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}


def environment() -> jinja2.Environment:
    """The templates shipped in the package, autoescaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("controller.http", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of ``static/``, read once: name -> (content, content type)."""
    out: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("controller.http").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in STATIC_TYPES:
            out[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return out


class Dashboard:
    """The pages, their JSON and their streams, for one controller."""

    def __init__(
        self,
        controller: Controller,
        *,
        instance: str,
        history: History | None,
        subject_of: Callable[[str], str] | None = None,
    ) -> None:
        self.controller = controller
        self.instance = instance
        self.history = history
        self.subjects = views.Subjects(subject_of)
        self.templates = environment()
        self.static = static_files()
        target = controller.reconciler.target
        self.streams = Streams(
            controller.feed.hub, target, snapshot=self.overview, known_apps=self.known_apps
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.page_apps),
            web.get("/apps/{name}", self.page_app),
            web.get("/passes/{id}", self.page_pass),
            web.get("/static/{file}", self.get_static),
            web.get("/api/v1/overview", self.get_overview),
            web.get("/api/v1/apps/{name}/replicas", self.get_replicas),
            *self.streams.routes(),
        ]

    def known_apps(self) -> set[str]:
        c = self.controller
        known = set(c.status)
        if c.last_result is not None and c.last_result.desired is not None:
            known |= set(c.last_result.desired.apps)
        return known

    # -- data ------------------------------------------------------------------------------

    async def overview(self) -> dict[str, Any]:
        """What ``/`` shows, as JSON (also the events stream's snapshot)."""
        last = await self._last_actions()
        doc = views.overview(self.controller, self.instance, last)
        await self.subjects.fill(doc)
        return doc

    async def _last_actions(self) -> dict[str, dict[str, Any]]:
        if self.history is None:
            return {}
        try:
            return await asyncio.to_thread(self.history.last_actions)
        except Exception as exc:  # the history is an aid: the page shows without it
            log.warning("dashboard_history_failed", error=str(exc))
            return {}

    async def replicas(self, name: str) -> list[dict[str, Any]]:
        """The app's replicas, each inspected (started, restarts); sorted by name."""
        engine = self.controller.runtime
        rows = [c for c in await engine.list() if c.app == name]
        inspect = getattr(engine, "inspect", None)
        out = []
        for c in sorted(rows, key=lambda c: c.name):
            info = c
            if inspect is not None:
                with contextlib.suppress(TrueupError):  # gone meanwhile: show the list's row
                    info = await inspect(c.id)
            out.append(views.replica_json(c, info))
        return out

    # -- handlers --------------------------------------------------------------------------

    async def get_overview(self, request: web.Request) -> web.Response:
        return web.json_response(await self.overview())

    async def get_replicas(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.known_apps():
            return web.json_response({"error": f"no app named {name!r}"}, status=404)
        try:
            return web.json_response({"app": name, "replicas": await self.replicas(name)})
        except TrueupError as exc:
            return web.json_response({"error": str(exc)}, status=503)

    async def page_apps(self, request: web.Request) -> web.Response:
        doc = await self.overview()
        return self._render("apps.html", doc=doc, title=f"trueup · {self.instance}")

    async def page_app(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        doc = await self.overview()
        app = next((a for a in doc["apps"] if a["name"] == name), None)
        if app is None and name not in self.known_apps():
            return self._render(
                "missing.html", status=404, doc=doc, what=f"app {name}", title="not found"
            )
        replicas: list[dict[str, Any]] = []
        engine_error = None
        try:
            replicas = await self.replicas(name)
        except TrueupError as exc:
            engine_error = str(exc)
        actions: list[dict[str, Any]] = []
        if self.history is not None:
            rows = await asyncio.to_thread(self.history.actions, name, limit=20)
            actions = [action_json(r) | {"pass_id": r["pass_id"]} for r in rows]
        return self._render(
            "app.html",
            doc=doc,
            app=app or views.unknown_app(name),
            replicas=replicas,
            engine_error=engine_error,
            actions=actions,
            title=f"{name} · trueup",
        )

    async def page_pass(self, request: web.Request) -> web.Response:
        doc = await self.overview()
        raw = request.match_info["id"]
        found = None
        if raw.isdigit() and len(raw) <= 18 and self.history is not None:  # an SQLite int
            found = await asyncio.to_thread(self.history.pass_detail, int(raw))
        if found is None:
            return self._render(
                "missing.html", status=404, doc=doc, what=f"pass {raw[:40]}", title="not found"
            )
        subject = await self.subjects.get(found["revision"])
        detail = views.pass_view(found, subject)
        return self._render("pass.html", doc=doc, p=detail, title=f"pass {raw} · trueup")

    async def get_static(self, request: web.Request) -> web.Response:
        found = self.static.get(request.match_info["file"])
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(
            body=body,
            content_type=content_type,
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    def _render(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        html = self.templates.get_template(template).render(
            instance=self.instance, fmt=views.when, short=views.short, **context
        )
        return web.Response(
            text=html, status=status, content_type="text/html", headers=PAGE_HEADERS
        )
