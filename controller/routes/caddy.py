"""Push the route table to Caddy through its admin API, as one server that trueup owns.

trueup owns exactly one key of Caddy's config: ``/config/apps/http/servers/trueup-<instance>``.
Every push replaces that server in one admin request (Caddy applies a config change
atomically, reusing its listeners, so no connection is refused during the switch); any other
app, server or route in Caddy's config is never read back into trueup nor written. Caddy 2.6
answers a GET of a missing key with ``null`` (or 400 when a parent is missing too), creates
missing parents on PUT, and refuses PATCH of a missing key: so a push is GET, then PATCH when
the server exists or PUT when it does not (retried once the other way on a race).

Every pass re-asserts the config: a push first GETs the server and skips the write only when
Caddy already holds exactly what trueup would send, so a restarted Caddy gets its routes
back on the next pass. Every failure to reach or convince Caddy is `RouterUnavailable`
(transient: the routes stage is retried on the next pass; containers are not affected).

The rendering (``server_config``) and its inverse (``parse_server``) are pure. Each route
carries an ``@id`` naming its app and port, so a diff can attribute what Caddy has to apps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from controller.errors import RouterUnavailable
from controller.labels import check_instance
from controller.routes.table import RouteEntry, RouteTable, normalize_path

log = structlog.get_logger(__name__)

DEFAULT_ADMIN = "http://127.0.0.1:2019"
DEFAULT_LISTEN = ":80"

# A request whose upstream refuses the connection (a replica that just left) is retried on
# another ready replica for up to TRY_DURATION; a replica that failed is skipped for
# FAIL_DURATION (passive health), so one dead replica does not fail requests in the meantime.
TRY_DURATION = "3s"
TRY_INTERVAL = "100ms"
FAIL_DURATION = "2s"


def server_name(instance: str) -> str:
    """The key of trueup's server in Caddy's ``apps.http.servers``."""
    return f"trueup-{instance}"


def route_id(instance: str, entry: RouteEntry) -> str:
    return f"trueup:{instance}:{entry.app}:{entry.port}:{entry.key}"


def caddy_order(table: Iterable[RouteEntry]) -> list[RouteEntry]:
    """First match wins in Caddy: exact hosts before wildcards, longer prefixes first."""
    return sorted(table, key=lambda e: (e.host.startswith("*."), e.host, -len(e.path), e.path))


def server_config(
    table: RouteTable, *, instance: str, listen: str = DEFAULT_LISTEN, https: bool = False
) -> dict[str, Any]:
    """trueup's Caddy server for ``table``: one terminal route per entry, then a 404.

    Without ``https`` automatic HTTPS is off for this server (plain HTTP on ``listen``); with
    it, Caddy obtains and renews certificates for the routes' host names itself.
    """
    routes = [_route(instance, entry) for entry in caddy_order(table)]
    routes.append(
        {
            "@id": f"trueup:{instance}:fallback",
            "handle": [
                {
                    "handler": "static_response",
                    "status_code": 404,
                    "body": "no route for this host and path\n",
                }
            ],
        }
    )
    server: dict[str, Any] = {"listen": [listen], "routes": routes}
    if not https:
        server["automatic_https"] = {"disable": True}
    return server


def _route(instance: str, entry: RouteEntry) -> dict[str, Any]:
    match: dict[str, Any] = {"host": [entry.host]}
    if entry.path != "/":
        match["path"] = [entry.path, f"{entry.path}/*"]
    handler: dict[str, Any]
    if entry.upstreams:
        handler = {
            "handler": "reverse_proxy",
            "upstreams": [{"dial": address} for address in entry.upstreams],
            "load_balancing": {
                "selection_policy": {"policy": "round_robin"},
                "try_duration": TRY_DURATION,
                "try_interval": TRY_INTERVAL,
            },
            "health_checks": {"passive": {"fail_duration": FAIL_DURATION, "max_fails": 1}},
        }
    else:
        handler = {
            "handler": "static_response",
            "status_code": 503,
            "headers": {"Retry-After": ["5"]},
            "body": f"no ready replica of {entry.app}\n",
        }
    return {
        "@id": route_id(instance, entry),
        "match": [match],
        "handle": [handler],
        "terminal": True,
    }


def parse_server(config: Any, *, instance: str) -> RouteTable:
    """The table a server config of ``server_config`` holds; foreign routes are ignored."""
    if not isinstance(config, dict):
        return ()
    prefix = f"trueup:{instance}:"
    out: list[RouteEntry] = []
    for route in config.get("routes") or []:
        if not isinstance(route, dict):
            continue
        rid = route.get("@id")
        if not isinstance(rid, str) or not rid.startswith(prefix):
            continue
        parts = rid[len(prefix) :].split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        app, port = parts[0], int(parts[1])
        matches = route.get("match") or [{}]
        match = matches[0] if isinstance(matches[0], dict) else {}
        hosts = match.get("host") or []
        paths = match.get("path") or ["/"]
        if not hosts:
            continue
        upstreams: list[str] = []
        for handler in route.get("handle") or []:
            if isinstance(handler, dict) and handler.get("handler") == "reverse_proxy":
                upstreams.extend(
                    str(u.get("dial")) for u in handler.get("upstreams") or [] if u.get("dial")
                )
        out.append(
            RouteEntry(
                host=str(hosts[0]),
                path=normalize_path(str(paths[0])),
                app=app,
                port=port,
                upstreams=tuple(upstreams),
            )
        )
    return tuple(sorted(out))


def admin_socket(admin_url: str) -> str | None:
    """The unix socket path of an admin address in Caddy's own notation (``unix//run/a.sock``;
    ``unix:///run/a.sock`` too), None for an ``http://`` address."""
    for prefix in ("unix://", "unix/"):
        if admin_url.startswith(prefix):
            return admin_url[len(prefix) :]
    return None


class CaddyRouter:
    """The admin API client for one instance's server (aiohttp; one session, opened lazily).

    ``admin_url`` is ``http://host:port`` or a unix socket (``unix//path``, Caddy's notation:
    e.g. a Caddy in a container on a swarm's overlay network, whose admin socket lives in a
    directory shared with the host). Caddy accepts admin requests on a socket only with an
    empty ``Host`` header.
    """

    kind = "caddy"

    def __init__(
        self,
        admin_url: str = DEFAULT_ADMIN,
        *,
        instance: str,
        listen: str = DEFAULT_LISTEN,
        https: bool = False,
        timeout: float = 5.0,
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.instance = check_instance(instance)  # it becomes a path segment of the admin API
        self.listen = listen
        self.https = https
        self.timeout = timeout
        self.socket = admin_socket(self.admin_url)
        self._headers = {"Host": ""} if self.socket else {}
        server = quote(server_name(self.instance), safe="")
        base = "http://localhost" if self.socket else self.admin_url
        self.url = f"{base}/config/apps/http/servers/{server}"
        self._session: aiohttp.ClientSession | None = None

    def render(self, table: RouteTable) -> dict[str, Any]:
        return server_config(table, instance=self.instance, listen=self.listen, https=self.https)

    async def current(self) -> RouteTable:
        """The table Caddy holds for this instance now (empty when it has no such server)."""
        return parse_server(await self._get(), instance=self.instance)

    async def push(self, table: RouteTable) -> bool:
        """Make Caddy hold ``table``; False when it already did (verified by a GET)."""
        want = self.render(table)
        have = await self._get()
        if have == want:
            log.debug("routes_unchanged", router=self.kind, routes=len(table))
            return False
        method = "PATCH" if have is not None else "PUT"
        for attempt in range(2):
            error = await self._send(method, want)
            if error is None:
                log.info("routes_pushed", router=self.kind, routes=len(table), method=method)
                return True
            # the server vanished (Caddy restarted) or appeared (a race) since the GET
            if attempt == 0 and method == "PATCH" and "does not exist" in error:
                method = "PUT"
            elif attempt == 0 and method == "PUT" and "already exists" in error:
                method = "PATCH"
            else:
                break
        raise RouterUnavailable(f"caddy refused the routes config: {error}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(path=self.socket) if self.socket else None
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def _get(self) -> Any:
        """The server's config, or None when Caddy has no such server (or no parent)."""
        try:
            async with self._client().get(self.url) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        if status == 200:
            try:
                return json.loads(text) if text.strip() else None
            except ValueError as exc:
                raise RouterUnavailable(f"caddy answered unreadable JSON: {text[:200]}") from exc
        if status == 400 and "invalid traversal" in text:
            return None
        raise RouterUnavailable(f"caddy admin GET {self.url}: HTTP {status}: {_error(text)}")

    async def _send(self, method: str, body: dict[str, Any]) -> str | None:
        """PUT or PATCH the server; None on success, Caddy's error text otherwise."""
        try:
            async with self._client().request(method, self.url, json=body) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        return None if 200 <= status < 300 else f"HTTP {status}: {_error(text)}"

    def _unreachable(self, exc: BaseException) -> RouterUnavailable:
        reason = str(exc) or type(exc).__name__
        return RouterUnavailable(f"caddy admin API at {self.admin_url} unreachable: {reason}")


def _error(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])[:500]
    return text.strip()[:500]
