"""The controller's HTTP listeners (aiohttp, on the controller's own event loop).

The main listener (``listen``) serves ``GET /metrics`` (Prometheus text), the probes of
``probes.py`` (``/healthz``, ``/readyz``), the API of ``api.py`` (``/api/v1/*``) and the
dashboard of ``dashboard.py`` (``/``, ``/apps/*``, ``/passes/*``, its streams) behind the
read guard of ``auth.py``, and the webhooks of ``webhooks.py`` under ``/hooks/``. With
``--hooks-listen``, ``/hooks/*`` is served on a listener of its own, where nothing else is,
and no longer on the main one. Handlers only read the controller's state or mark work.

Started by `trueup run` (``daemon/run.py``). Both listeners bind the same way
(:class:`Listener`): an address already in use does not stop reconciling; the listener logs
``http_listen_failed`` (``hooks_listen_failed``) and keeps trying to bind in the background
(the ``http-bind`` / ``hooks-bind`` helper, supervised by the controller's ``Supervisor``),
1 s doubling to :data:`BIND_RETRY_MAX_S`. Once bound, the main listener logs
``dashboard_url`` and prints the dashboard's URL on stderr.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.daemon.supervisor import Supervisor
from controller.errors import ConfigError
from controller.http.api import Api
from controller.http.auth import read_guard
from controller.http.dashboard import Dashboard
from controller.http.metrics import Metrics
from controller.http.probes import ENGINE_CHECK_TTL_S, Probes
from controller.http.webhooks import MAX_BODY, MAX_CONCURRENT, FetchCoalescer, Webhooks

log = structlog.get_logger(__name__)

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


def bound_urls(host: str, port: int) -> tuple[str, str]:
    """(the URL to connect to, the URL to log) of a listener bound at ``host:port``: an IPv6
    host in brackets, and every interface (``0.0.0.0``) reached through 127.0.0.1."""
    shown = f"[{host}]" if ":" in host else host
    connect = "127.0.0.1" if host == "0.0.0.0" else shown
    return f"http://{connect}:{port}", f"http://{shown}:{port}"


@dataclass(frozen=True)
class ListenerNames:
    """A listener's helper task and log events (fixed names, for logs and /readyz)."""

    helper: str
    failed: str
    listening: str


MAIN = ListenerNames("http-bind", "http_listen_failed", "http_listening")
HOOKS = ListenerNames("hooks-bind", "hooks_listen_failed", "hooks_listening")


class Listener:
    """One aiohttp application on one address: bound at ``start`` if possible, else retried
    in the background by a supervised helper until it binds; ``close`` stops both."""

    def __init__(
        self,
        make_app: Callable[[], web.Application],
        listen: str,
        *,
        helpers: Supervisor,
        names: ListenerNames,
        on_bound: Callable[[str], None] | None = None,
    ) -> None:
        self.make_app = make_app
        self.host, self.port = parse_listen(listen)
        self.helpers = helpers
        self.names = names
        self.on_bound = on_bound
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.make_app(), **RUNNER_OPTIONS)
        await self._runner.setup()
        if not await self._bind():
            self.helpers.start(self.names.helper, self._keep_binding, forever=False)

    async def _bind(self) -> bool:
        assert self._runner is not None
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as exc:
            log.error(self.names.failed, host=self.host, port=self.port, error=str(exc))
            return False
        addresses = self._runner.addresses  # the bound port, when 0 was asked for
        port = int(addresses[-1][1]) if addresses else self.port
        self.url, shown = bound_urls(self.host, port)
        if self.on_bound is not None:
            self.on_bound(self.url)
        log.info(self.names.listening, url=shown)
        return True

    async def _keep_binding(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            if await self._bind():
                return
            delay = min(delay * 2, BIND_RETRY_MAX_S)

    async def close(self) -> None:
        await self.helpers.stop(self.names.helper)
        if self._runner is not None:
            await self._runner.cleanup()


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
        self.webhook_max_body = webhook_max_body
        self.fetcher = FetchCoalescer(controller.watcher, controller.work.mark)
        self.webhooks = Webhooks(
            webhook_secret,
            self.fetcher,
            branch=self._branch,
            count=metrics.webhook,
            max_body=webhook_max_body,
            max_concurrent=webhook_concurrency,
        )
        self.probes = Probes(
            controller, fetch_budget_s=fetch_budget_s, engine_check_ttl_s=engine_check_ttl_s
        )
        self.api = Api(
            controller,
            instance=instance,
            fetcher=self.fetcher,
            api_token=api_token,
            history=history,
        )
        self.dashboard = Dashboard(
            controller,
            instance=instance,
            history=history,
            subject_of=getattr(controller.reconciler.source, "commit_subject", None),
        )
        self.guard = read_guard(read_token, api_token)
        self.main = Listener(
            self.make_app, listen, helpers=controller.helpers, names=MAIN, on_bound=self._bound
        )
        self.hooks = (
            Listener(self.make_hooks_app, hooks_listen, helpers=controller.helpers, names=HOOKS)
            if hooks_listen is not None
            else None
        )

    @property
    def url(self) -> str | None:
        """Where the main listener answers, once bound."""
        return self.main.url

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.webhook_max_body, middlewares=[self.guard])
        app.add_routes(
            [
                web.get("/metrics", self.get_metrics),
                *self.probes.routes(),
                *self.api.routes(),
                *self.dashboard.routes(),
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
        await self.main.start()
        if self.hooks is not None:
            await self.hooks.start()

    async def close(self) -> None:
        if self.hooks is not None:
            await self.hooks.close()
        await self.probes.close()
        await self.fetcher.close()
        self.dashboard.streams.close()
        await self.main.close()

    async def get_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _bound(self, url: str) -> None:
        self.controller.api_url = url  # written to status.json for `trueup status`
        log.info("dashboard_url", url=url + "/")
        print(f"trueup: dashboard at {url}/", file=sys.stderr, flush=True)

    def _branch(self) -> str | None:
        watcher = self.controller.watcher
        if watcher is not None and watcher.latest is not None and watcher.latest.branch:
            return watcher.latest.branch
        return None
