"""CaddyRouter against a real Caddy's admin API; upstreams are plain HTTP servers on loopback."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from controller.errors import RouterUnavailable
from controller.routes.caddy import CaddyRouter
from controller.routes.table import RouteEntry
from tests.routes.conftest import Caddy, free_port

pytestmark = pytest.mark.integration


def _server(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{name} {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def backends() -> Iterator[list[str]]:
    """Two HTTP servers answering their own name; yields their ``ip:port``."""
    servers = [_server("a"), _server("b")]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        yield [f"127.0.0.1:{s.server_address[1]}" for s in servers]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def _admin(caddy: Caddy, method: str, path: str, body: object) -> None:
    request = urllib.request.Request(
        f"{caddy.admin_url}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


async def test_push_creates_the_server_and_leaves_other_config_alone(
    caddy: Caddy, backends: list[str]
) -> None:
    """First push into an admin-only Caddy creates trueup's server; a foreign server added
    later survives every push; an unchanged table is verified, not rewritten."""
    router = CaddyRouter(caddy.admin_url, instance="t1", listen=caddy.proxy_listen)
    try:
        assert await router.current() == ()
        table = (RouteEntry("web.test", "/", "web", 80, tuple(backends)),)
        assert await router.push(table) is True
        foreign = {
            "listen": [f"127.0.0.1:{free_port()}"],
            "routes": [{"handle": [{"handler": "static_response", "body": "mine"}]}],
        }
        _admin(caddy, "POST", "/config/apps/http/servers/other", foreign)
        seen = {caddy.get("web.test")[1].split()[0] for _ in range(4)}
        assert seen == {"a", "b"}  # round-robin over both ready upstreams
        assert caddy.get("nobody.test")[0] == 404

        table = (
            RouteEntry("web.test", "/", "web", 80, tuple(backends[:1])),
            RouteEntry("web.test", "/api", "api", 80, ()),
        )
        assert await router.push(table) is True
        assert await router.push(table) is False
        assert await router.current() == table
        assert {caddy.get("web.test")[1] for _ in range(3)} == {"a /\n"}
        assert caddy.get("web.test", "/api/v1")[0] == 503
        assert caddy.get("web.test", "/apiary")[1] == "a /apiary\n"
        config = caddy.config()
        assert isinstance(config, dict)
        assert config["apps"]["http"]["servers"]["other"] == foreign
    finally:
        await router.close()


async def test_restarted_caddy_gets_its_routes_back_on_the_next_push(
    caddy: Caddy, backends: list[str]
) -> None:
    """A Caddy restarted with its file config has lost trueup's server: push re-asserts it."""
    router = CaddyRouter(caddy.admin_url, instance="t2", listen=caddy.proxy_listen)
    table = (RouteEntry("web.test", "/", "web", 80, tuple(backends)),)
    try:
        assert await router.push(table) is True
        caddy.restart()
        assert await router.current() == ()
        assert await router.push(table) is True
        assert caddy.get("web.test")[0] == 200
    finally:
        await router.close()


async def test_unreachable_caddy_is_a_transient_router_error() -> None:
    """No admin API at the URL: RouterUnavailable naming it, for reads and pushes."""
    url = f"http://127.0.0.1:{free_port()}"
    router = CaddyRouter(url, instance="t3", timeout=2)
    try:
        with pytest.raises(RouterUnavailable, match="unreachable"):
            await router.current()
        with pytest.raises(RouterUnavailable, match=url):
            await router.push(())
    finally:
        await router.close()


def _unix_get(path: Path, host: str) -> tuple[int, str]:
    """One request with ``Host: host`` to an HTTP server listening on the unix socket ``path``."""

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(5)
            self.sock.connect(str(path))

    conn = Conn("localhost", timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


async def test_admin_api_on_a_unix_socket(tmp_path: Path, backends: list[str]) -> None:
    """A Caddy whose admin API is a unix socket (``unix//path``, Caddy's notation: a Caddy in
    a container with its socket directory shared): push, read back, and the proxy serves
    the route (here on a unix socket listener too)."""
    if shutil.which("caddy") is None:
        pytest.skip("caddy is not installed")
    admin, proxy = tmp_path / "admin.sock", tmp_path / "http.sock"
    config = tmp_path / "caddy.json"
    config.write_text(json.dumps({"admin": {"listen": f"unix/{admin}"}}))
    proc = subprocess.Popen(
        ["caddy", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)},
    )
    router = CaddyRouter(f"unix/{admin}", instance="t4", listen=f"unix/{proxy}")
    try:
        deadline = time.monotonic() + 15
        while not admin.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "caddy did not start"
            time.sleep(0.1)
        assert await router.current() == ()
        table = (RouteEntry("web.test", "/", "web", 80, tuple(backends[:1])),)
        assert await router.push(table) is True
        assert await router.push(table) is False
        assert await router.current() == table
        assert _unix_get(proxy, "web.test") == (200, "a /\n")
    finally:
        await router.close()
        proc.terminate()
        proc.wait(timeout=10)
