"""`trueup run` as a subprocess keeps running through what would end a loop: an engine that
goes away right after an apply, and a token file that turns into invalid UTF-8.

The engine is the real dockerd behind a unix-socket proxy this test cuts at the moment that
matters (the engine itself is never disturbed); the git remote is dulwich's smart-HTTP server
on loopback behind basic auth, so the token file is really read and really sent.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import docker
import pytest

from tests.gitutil import commit_files, git, make_repo
from tests.http.test_run_http import Http, free_port
from tests.integration.test_controller import BreakableProxy, Controller, wait_for, web

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

_REQUEST = re.compile(rb"^(?P<method>[A-Z]+) (?:/v[0-9.]+)?(?P<path>/[^ ?]*)")


class CutAfterApply(BreakableProxy):
    """Cuts itself (refusing the request that arrives) at the first container list after a
    container was started: the engine vanishes between apply and the observation after it."""

    def __init__(self, upstream: str, path: Path) -> None:
        super().__init__(upstream, path)
        self.armed = False
        self.tripped = threading.Event()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            first = client.recv(65536)
        except OSError:
            client.close()
            return
        request = _REQUEST.match(first)
        if request is not None and not self.tripped.is_set():
            method, path = request.group("method"), request.group("path")
            if method == b"POST" and path.startswith(b"/containers/") and path.endswith(b"/start"):
                self.armed = True
            elif self.armed and method == b"GET" and path == b"/containers/json":
                self.tripped.set()
                client.close()
                self.cut()
                return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.upstream)
            upstream.sendall(first)
        except OSError:
            client.close()
            upstream.close()
            return
        with self._lock:
            self._conns += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()


def history(ctl: Controller) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "controller", "history", "--state-dir", str(ctl.state),
         "--output", "json", "--limit", "50"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    passes: list[dict[str, Any]] = json.loads(out.stdout)["passes"]
    return passes


def status_file(ctl: Controller) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((ctl.state / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc


def alive(ctl: Controller, check: Callable[[], bool]) -> Callable[[], bool]:
    """``check``, failing at once when the controller process has exited."""

    def checked() -> bool:
        assert ctl.process is not None
        code = ctl.process.poll()
        assert code is None, f"trueup run exited with {code}:\n{ctl.log.read_text()[-3000:]}"
        return check()

    return checked


@pytest.fixture
def ctl(tmp_path: Path, instance: str) -> Iterator[Controller]:
    client = docker.from_env()
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": web("1")})
    c = Controller(repo, tmp_path / "state", instance, client, tmp_path / "controller.log")
    try:
        yield c
    finally:
        if c.process is not None and c.process.poll() is None:
            c.process.kill()
            c.process.wait()
        client.close()


def test_engine_gone_right_after_apply_is_recorded_and_the_loop_recovers(
    ctl: Controller, tmp_path: Path
) -> None:
    """The engine vanishes between the first apply and the list after it: `trueup run` keeps
    running, records the pass as an error (history, status.json's last_error) with what it
    applied, retries with backoff while the engine is gone, and once it is back ends Synced
    with the same containers (nothing recreated)."""
    proxy = CutAfterApply("/var/run/docker.sock", tmp_path / "engine.sock")
    proxy.start()
    try:
        ctl.start("--runtime", "docker", "--runtime-url", f"unix://{proxy.path}", "--listen", "off")
        assert proxy.tripped.wait(60), "no list after a container start"
        ids = {c.id for c in ctl.containers()}
        assert len(ids) == 2

        def failed_after_apply() -> bool:
            return any(
                e.get("event") == "reconcile_failed"
                and str(e.get("error", "")).startswith("observing the engine after apply:")
                for e in ctl.events()
            )

        wait_for(alive(ctl, failed_after_apply), 30, "the lost observation to be recorded")
        wait_for(alive(ctl, lambda: bool(status_file(ctl).get("last_error"))), 10, "last_error")
        assert "engine unreachable" in status_file(ctl)["last_error"]  # retries fail meanwhile
        time.sleep(2)  # gone a while longer: retries fail meanwhile
        proxy.start()
        wait_for(alive(ctl, lambda: ctl.converged("1")), 60, "convergence after the outage")
        wait_for(alive(ctl, lambda: status_file(ctl).get("last_error") is None), 30, "recovery")
        assert {c.id for c in ctl.containers()} == ids
        passes = history(ctl)[::-1]
        assert (passes[0]["trigger"], passes[0]["result"], passes[0]["changes"]) == (
            "startup",
            "error",
            1,
        )
        assert "observing the engine after apply" in passes[0]["message"]
        assert {p["result"] for p in passes[1:]} <= {"error", "noop"}  # nothing re-applied
        assert "error" in {p["result"] for p in passes[1:]}  # retried while the engine was gone
        assert passes[-1]["result"] == "noop"
        assert ctl.stop() == 0
    finally:
        proxy.cut()


# -- a token file that stops being UTF-8 -------------------------------------------------

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def basic_auth(app: WsgiApp, user: str, password: str) -> WsgiApp:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION") != expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"unauthorized"]
        return app(environ, start_response)

    return guarded


@pytest.fixture
def http_remote(tmp_path: Path) -> Iterator[str]:
    """``web`` committed in a bare repository served over smart HTTP, user ``ci``/``s3cret``;
    yields the URL (without the password)."""
    from dulwich.repo import Repo
    from dulwich.server import DictBackend
    from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_wsgi_chain

    work = tmp_path / "work"
    make_repo(work, {"apps/web.yaml": web("1", replicas=1)})
    commit_files(work, {"README.md": "served over http\n"}, "readme")
    bare = tmp_path / "app.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    repo = Repo(str(bare))
    app = basic_auth(make_wsgi_chain(DictBackend({"/app.git": repo})), "ci", "s3cret")
    port = free_port()
    server = make_server(
        "127.0.0.1",
        port,
        app,
        server_class=WSGIServerLogger,
        handler_class=WSGIRequestHandlerLogger,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://ci@127.0.0.1:{port}/app.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        repo.close()


def test_token_file_turned_invalid_utf8_makes_readyz_503_naming_the_watcher(
    ctl: Controller, tmp_path: Path, http_remote: str
) -> None:
    """The token file becomes invalid UTF-8: the next fetch fails with a source error naming
    the file, /readyz is 503 naming the git watcher, the process keeps running and
    reconciling; a good token again makes it ready."""
    token = tmp_path / "git-token"
    token.write_text("s3cret\n")
    api = tmp_path / "api-token"
    api.write_text("api-token-for-tests\n")
    port = free_port()
    http = Http(port)
    ctl.start("--repo", http_remote, "--token-file", str(token),  # the last --repo wins
              "--listen", f"127.0.0.1:{port}", "--api-token-file", str(api))  # fmt: skip

    def readyz() -> tuple[int, dict[str, Any]]:
        status, body = http.call("GET", "/readyz")
        return status, (json.loads(body) if body else {})

    wait_for(alive(ctl, lambda: http.synced() and readyz()[0] == 200), 60, "first convergence")
    token.write_bytes(b"s3cr\xff\xfeet\n")
    passes = http.json("/api/v1/status")["passes"]
    assert http.call("POST", "/api/v1/reconcile",
                     headers={"Authorization": "Bearer api-token-for-tests"})[0] == 202  # fmt: skip
    wait_for(alive(ctl, lambda: readyz()[0] == 503), 15, "/readyz to turn 503")
    _, body = readyz()
    git_check = body["checks"]["git"]
    assert git_check["ok"] is False
    assert git_check["message"].startswith("git-watch: ")
    assert f"token file {token} is not valid UTF-8" in git_check["message"]
    assert "s3cr" not in json.dumps(body)
    wait_for(alive(ctl, lambda: http.json("/api/v1/status")["passes"] > passes), 15, "a pass")
    assert http.synced()

    token.write_text("s3cret\n")
    assert http.call("POST", "/api/v1/reconcile",
                     headers={"Authorization": "Bearer api-token-for-tests"})[0] == 202  # fmt: skip
    wait_for(alive(ctl, lambda: readyz()[0] == 200), 15, "/readyz to recover")
    fetch_failures = [e for e in ctl.events() if e.get("event") == "git_fetch_failed"]
    assert fetch_failures and all("s3cr" not in json.dumps(e) for e in fetch_failures)
    assert ctl.stop() == 0
