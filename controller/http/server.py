"""The controller's HTTP surface (aiohttp, on the controller's own event loop).

``GET /metrics`` (Prometheus text), ``GET /healthz`` (the process and its loop answer),
``GET /readyz`` (first pass done, engine answers ping, git fetch healthy or failing only
transiently within its retry budget, every helper task running; the engine's answer is cached
for ``ENGINE_CHECK_TTL_S`` and shared by concurrent requests, so probes never load the
engine), ``GET /api/v1/status`` and ``GET /api/v1/apps/{name}`` (the documented status JSON),
``POST /api/v1/reconcile`` (bearer token from ``--api-token-file``; disabled without one), and
the webhooks of ``webhooks.py`` under ``/hooks/``. Handlers only read the controller's state or
mark work; nothing here reconciles by itself.

With a read token (``--api-read-token-file``), every GET of ``/metrics`` and under
``/api/v1/`` needs ``Authorization: Bearer <read or API token>``; ``/healthz`` and ``/readyz``
stay open (probes carry no credentials). With ``--hooks-listen``, ``/hooks/*`` is served on a
listener of its own, where nothing else is, and no longer on the main one.

Started by `trueup run` (``cli._run_controller``). A listen address already in use does not
stop reconciling: the server logs ``http_listen_failed`` and keeps trying to bind in the
background (the ``http-bind`` helper, supervised by the controller's ``Supervisor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.errors import ConfigError, PermanentError
from controller.http.metrics import Metrics
from controller.http.webhooks import MAX_BODY, MAX_CONCURRENT, FetchCoalescer, Webhooks

log = structlog.get_logger(__name__)

PING_TIMEOUT_S = 3.0
ENGINE_CHECK_TTL_S = 1.0
"""How long /readyz reuses the engine's last ping answer."""
BIND_RETRY_MAX_S = 30.0
RUNNER_OPTIONS: dict[str, Any] = {"access_log": None, "handle_signals": False, "lingering_time": 0}
"""How both listeners run. ``lingering_time: 0``: after answering a request whose body it did
not read (a webhook refused on its headers, too large, or past the concurrency bound),
aiohttp closes the connection instead of reading and discarding the rest for up to 10 s (its
default), which would still pull every refused body through the controller's memory."""


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (every interface) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"invalid listen address {listen!r} (expected HOST:PORT)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def read_secret(path: Path | None, what: str) -> bytes | None:
    """A token or secret from a file (surrounding whitespace dropped); None without a file."""
    if path is None:
        return None
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    if not value:
        raise ConfigError(f"{what} file {path} is empty")
    return value


def bearer_ok(request: web.Request, *tokens: bytes | None) -> bool:
    """True when the request's ``Authorization: Bearer`` is one of ``tokens`` (constant time;
    every token is compared, so the timing does not say which one matched)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    value = given.strip().encode("utf-8", "replace")
    matched = False
    for token in tokens:
        if token is not None and hmac.compare_digest(token, value):
            matched = True
    return matched


class _HooksListener:
    """``--hooks-listen``: the webhooks on an address of their own (bound like the main one:
    now if possible, else retried in the background)."""

    def __init__(self, server: Server, listen: str) -> None:
        self.server = server
        self.host, self.port = parse_listen(listen)
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.server.make_hooks_app(), **RUNNER_OPTIONS)
        await self._runner.setup()
        if not await self._bind():
            self.server.controller.helpers.start("hooks-bind", self._keep_binding, forever=False)

    async def _bind(self) -> bool:
        assert self._runner is not None
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as exc:
            log.error("hooks_listen_failed", host=self.host, port=self.port, error=str(exc))
            return False
        addresses = self._runner.addresses
        port = int(addresses[-1][1]) if addresses else self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{'127.0.0.1' if self.host == '0.0.0.0' else host}:{port}"
        log.info("hooks_listening", url=f"http://{host}:{port}")
        return True

    async def _keep_binding(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            if await self._bind():
                return
            delay = min(delay * 2, BIND_RETRY_MAX_S)

    async def close(self) -> None:
        await self.server.controller.helpers.stop("hooks-bind")
        if self._runner is not None:
            await self._runner.cleanup()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Server:
    """Serves one controller; ``start`` binds (or keeps trying), ``close`` stops."""

    def __init__(
        self,
        controller: Controller,
        *,
        metrics: Metrics,
        listen: str,
        instance: str,
        api_token: bytes | None = None,
        webhook_secret: bytes | None = None,
        history: History | None = None,
        fetch_budget_s: float = 300.0,
        engine_check_ttl_s: float = ENGINE_CHECK_TTL_S,
        read_token: bytes | None = None,
        hooks_listen: str | None = None,
        webhook_max_body: int = MAX_BODY,
        webhook_concurrency: int = MAX_CONCURRENT,
    ) -> None:
        self.controller = controller
        self.metrics = metrics
        self.host, self.port = parse_listen(listen)
        self.instance = instance
        self.api_token = api_token
        self.read_token = read_token
        self.history = history
        self.fetch_budget_s = fetch_budget_s
        self.engine_check_ttl_s = engine_check_ttl_s
        self._engine_answer: tuple[float, bool] | None = None  # (monotonic time, answered)
        self._engine_ping: asyncio.Task[bool] | None = None
        self.fetcher = FetchCoalescer(controller.watcher, controller.work.mark)
        self.webhook_max_body = webhook_max_body
        self.webhooks = Webhooks(
            webhook_secret,
            self.fetcher,
            branch=self._branch,
            count=metrics.webhook,
            max_body=webhook_max_body,
            max_concurrent=webhook_concurrency,
        )
        self.hooks = _HooksListener(self, hooks_listen) if hooks_listen is not None else None
        self.started = time.monotonic()
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.webhook_max_body, middlewares=[self._reads])
        app.add_routes(
            [
                web.get("/metrics", self.get_metrics),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/api/v1/status", self.get_status),
                web.get("/api/v1/apps/{name}", self.get_app),
                web.post("/api/v1/reconcile", self.reconcile),
                *(self.webhooks.routes() if self.hooks is None else []),
            ]
        )
        return app

    def make_hooks_app(self) -> web.Application:
        """The app of ``--hooks-listen``: the webhooks and nothing else."""
        app = web.Application(client_max_size=self.webhook_max_body)
        app.add_routes(self.webhooks.routes())
        return app

    async def start(self) -> None:
        """Bind now if possible; otherwise keep trying in the background."""
        self._runner = web.AppRunner(self.make_app(), **RUNNER_OPTIONS)
        await self._runner.setup()
        if not await self._bind():
            self.controller.helpers.start("http-bind", self._keep_binding, forever=False)
        if self.hooks is not None:
            await self.hooks.start()

    async def _bind(self) -> bool:
        assert self._runner is not None
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            log.error("http_listen_failed", host=self.host, port=self.port, error=str(exc))
            return False
        addresses = self._runner.addresses  # the bound port, when 0 was asked for
        port = int(addresses[-1][1]) if addresses else self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        connect = "127.0.0.1" if self.host == "0.0.0.0" else host
        self.url = f"http://{connect}:{port}"
        self.controller.api_url = self.url
        log.info("http_listening", url=f"http://{host}:{port}")
        return True

    async def _keep_binding(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            if await self._bind():
                return
            delay = min(delay * 2, BIND_RETRY_MAX_S)

    async def close(self) -> None:
        if self.hooks is not None:
            await self.hooks.close()
        await self.controller.helpers.stop("http-bind")
        if self._engine_ping is not None:
            self._engine_ping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._engine_ping
        await self.fetcher.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _reads(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """With a read token, GETs of /metrics and /api/v1/* need it (or the API token).

        Judged by the route that matched, not by the raw path, so no spelling of a path
        reaches a protected handler without the token.
        """
        if self.read_token is not None and request.method in ("GET", "HEAD"):
            resource = request.match_info.route.resource
            canonical = resource.canonical if resource is not None else ""
            if (canonical == "/metrics" or canonical.startswith("/api/v1/")) and not bearer_ok(
                request, self.read_token, self.api_token
            ):
                log.warning("api_unauthorized", path=request.path)
                return web.json_response(
                    {"error": "missing or wrong bearer token (--api-read-token-file)"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="trueup"'},
                )
        return await handler(request)

    # -- probes and metrics ----------------------------------------------------------------

    async def get_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """This handler running is the proof: the process and its event loop are alive."""
        return web.json_response(
            {
                "status": "ok",
                "passes": self.controller.passes,
                "uptime_s": round(time.monotonic() - self.started, 1),
            }
        )

    async def readyz(self, request: web.Request) -> web.Response:
        c = self.controller
        checks: dict[str, dict[str, Any]] = {}
        done = c.first_pass_done.is_set()
        checks["first_pass"] = {
            "ok": done,
            "message": "finished" if done else f"not finished yet ({c.last_error or 'running'})",
        }
        engine = await self._engine_answers()
        checks["engine"] = {
            "ok": engine,
            "message": "answers ping" if engine else "does not answer ping",
        }
        checks["git"] = self._git_check()
        checks["helpers"] = self._helpers_check()
        ready = all(check["ok"] for check in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def _engine_answers(self) -> bool:
        """The engine's ping answer, at most ``engine_check_ttl_s`` old; one ping at a time."""
        answer = self._engine_answer
        if answer is not None and time.monotonic() - answer[0] < self.engine_check_ttl_s:
            return answer[1]
        if self._engine_ping is None or self._engine_ping.done():
            self._engine_ping = asyncio.create_task(self._ping(), name="readyz-ping")
        # shielded: a probe that hangs up must not cancel the ping other probes wait for
        return await asyncio.shield(self._engine_ping)

    async def _ping(self) -> bool:
        try:
            ok = await asyncio.wait_for(self.controller.runtime.ping(), PING_TIMEOUT_S)
        except TimeoutError:
            ok = False
        except Exception as exc:  # pings never raise by contract; if one does, it is not ready
            log.warning("readyz_ping_failed", error=str(exc) or type(exc).__name__)
            ok = False
        self._engine_answer = (time.monotonic(), ok)
        return ok

    def _git_check(self) -> dict[str, Any]:
        watcher = self.controller.watcher
        if watcher is None or watcher.error is None:
            return {"ok": True, "message": "last fetch succeeded"}
        since = watcher.failing_since or time.monotonic()
        failing = time.monotonic() - since
        if isinstance(watcher.error, PermanentError):  # waiting would not fix it: say so now
            return {
                "ok": False,
                "message": (
                    f"git-watch: fetch failing for {failing:.0f}s (permanent error, retried "
                    f"every interval): {watcher.error}"
                ),
            }
        ok = failing < self.fetch_budget_s
        return {
            "ok": ok,
            "message": (
                f"git-watch: fetch failing for {failing:.0f}s "
                f"({'within' if ok else 'past'} its {self.fetch_budget_s:.0f}s retry budget): "
                f"{watcher.error}"
            ),
        }

    def _helpers_check(self) -> dict[str, Any]:
        helpers = self.controller.helpers
        now = helpers.clock.now()
        down = helpers.down()
        return {
            "ok": not down,
            "message": (
                "; ".join(f"{h.name} is down: {h.error}" for h in down) if down else "all running"
            ),
            "tasks": {name: h.to_json(now) for name, h in sorted(helpers.helpers.items())},
        }

    def _branch(self) -> str | None:
        watcher = self.controller.watcher
        if watcher is None:
            return None
        if watcher.latest is not None and watcher.latest.branch:
            return watcher.latest.branch
        return None

    # -- the API ---------------------------------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        c = self.controller
        return web.json_response(
            {
                "instance": self.instance,
                "revision": c.last_result.revision if c.last_result else None,
                "passes": c.passes,
                "first_pass_done": c.first_pass_done.is_set(),
                "last_error": c.last_error,
                **c.status_json(),
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
            "last_transition": _iso(time.time() - ago),
            "backoff_failures": self.controller.backoff.failures(name),
            "recent_actions": [],
        }
        if self.history is not None:
            rows = await asyncio.to_thread(self.history.actions, name, limit=10)
            doc["recent_actions"] = [
                {
                    "at": _iso(row["started_at"]),
                    "revision": row["revision"],
                    "trigger": row["trigger"],
                    "action": row["kind"],
                    "result": row["result"],
                    "message": row["message"],
                    "duration_s": round(row["duration_s"], 3),
                }
                for row in rows
            ]
        return web.json_response(doc)

    async def reconcile(self, request: web.Request) -> web.Response:
        if self.api_token is None:
            return web.json_response(
                {"error": "the reconcile API is disabled: start trueup run with --api-token-file"},
                status=403,
            )
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            self.api_token, given.strip().encode("utf-8", "replace")
        ):
            log.warning("api_unauthorized", path=request.path)
            return web.json_response(
                {"error": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="trueup"'},
            )
        app = request.query.get("app")
        c = self.controller
        if app is not None:
            known = set(c.status)
            if c.last_result is not None and c.last_result.desired is not None:
                known |= set(c.last_result.desired.apps)
            if app not in known:
                return web.json_response({"error": f"no app named {app!r}"}, status=404)
            c.backoff.succeeded(app)  # asked for by a person: retry now, not after backoff
            c.work.mark("api", app)
        else:
            self.fetcher.request(mark="api")  # fetch first, so the pass sees the newest commit
        log.info("reconcile_requested", app=app)
        return web.json_response({"accepted": True, "app": app}, status=202)
