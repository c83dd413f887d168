"""Routes end to end: `trueup apply --router caddy` on a real dockerd behind a real Caddy.

Apps are busybox httpd replicas that answer with their version and hostname (the container's
short id), so a response names the replica that served it. The CLI runs as a subprocess on a
git repository made with the git CLI, as an operator would run it.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, git, make_repo
from tests.routes.conftest import Caddy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - mkdir -p /www && echo "$VERSION $(hostname)" > /www/index.html &&
      echo ok > /www/healthz && exec httpd -f -p 8080 -h /www
  env: {{VERSION: "{version}"}}
  replicas: {replicas}
  ports: [{{name: http, containerPort: 8080}}]
  routes: [{{host: {host}, port: http}}]
  healthCheck: {{http: {{path: /healthz, port: http}}, interval: 1s, timeout: 1s, retries: 2}}
  init: true
  stopGracePeriod: 1s
"""


def app(name: str, host: str, *, replicas: int = 1, version: str = "v1") -> str:
    return APP.format(name=name, host=host, replicas=replicas, version=version)


@dataclass
class Routed:
    """A deployment repo, its trueup instance and the Caddy its routes go to."""

    repo: Path
    instance: str
    state: Path
    caddy: Caddy
    client: docker.DockerClient

    def trueup(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args, "--repo", str(self.repo)]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        cmd += ["--router", "caddy", "--caddy-admin", self.caddy.admin_url]
        cmd += ["--proxy-listen", self.caddy.proxy_listen]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def commit(self, files: dict[str, str]) -> None:
        commit_files(self.repo, files, "change")

    def short_ids(self, app: str) -> set[str]:
        label = [f"trueup.instance={self.instance}", f"trueup.app={app}"]
        return {
            c.id[:12]
            for c in self.client.containers.list(ignore_removed=True, filters={"label": label})
        }

    def answers(self, host: str, n: int) -> list[str]:
        out = []
        for _ in range(n):
            status, body = self.caddy.get(host)
            assert status == 200, (status, body)
            out.append(body.strip())
        return out


@pytest.fixture
def routed(tmp_path: Path, instance: str, caddy: Caddy) -> Iterator[Routed]:
    client = docker.from_env()
    repo = tmp_path / "repo"
    make_repo(repo, {"README.md": "deployment repo\n"})
    try:
        yield Routed(repo, instance, tmp_path / "state", caddy, client)
    finally:
        client.close()


def test_hosts_reach_their_apps_round_robin_and_a_deleted_app_stops_answering(
    routed: Routed,
) -> None:
    """Each Host reaches its app, both replicas of web take traffic, diff is then in sync,
    and after the app's manifest is deleted its route answers 404."""
    routed.commit(
        {
            "apps/web.yaml": app("web", "web.test", replicas=2),
            "apps/api.yaml": app("api", "api.test"),
        }
    )
    applied = routed.trueup("apply", check=True)
    assert "routes: 2 route(s) in caddy (pushed)" in applied.stdout
    assert "web.test/ → web:8080" in applied.stdout
    web = {answer.split()[1] for answer in routed.answers("web.test", 6)}
    assert web == routed.short_ids("web") and len(web) == 2
    assert {a.split()[1] for a in routed.answers("api.test", 2)} == routed.short_ids("api")
    assert routed.trueup("diff").returncode == 0

    git(routed.repo, "rm", "-q", "apps/api.yaml")
    git(routed.repo, "commit", "-q", "-m", "remove api")
    diff = routed.trueup("diff", "--output", "json")
    assert diff.returncode == 1, diff.stderr
    (change,) = json.loads(diff.stdout)["changes"]
    assert (change["app"], change["action"]) == ("api", "delete")
    assert {"path": "spec.routes[api.test/]", "before": "api:8080", "after": None} in change[
        "fields"
    ]
    routed.trueup("apply", check=True)
    assert routed.caddy.get("api.test")[0] == 404
    assert len(set(routed.answers("web.test", 4))) == 2


@dataclass
class Load:
    """A client sending one request every ``period`` seconds until stopped.

    ``keepalive=False`` opens a connection per request. ``keepalive=True`` reuses one, and,
    as browsers and Go's client do for idempotent requests (RFC 9112, 9.3.1.1), retries once
    on a new connection when a reused idle connection was closed before any response (Caddy
    closes idle connections of the old config on every config change); those are counted in
    ``retried``. Anything else is a failure.
    """

    caddy: Caddy
    host: str
    keepalive: bool = False
    period: float = 0.02
    results: list[tuple[float, int, str]] = field(default_factory=list)
    retried: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _conn: http.client.HTTPConnection | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, body = self._reused() if self.keepalive else self._fresh()
            except (OSError, http.client.HTTPException) as exc:
                status, body = 0, f"{type(exc).__name__}: {exc}"
            self.results.append((started, status, body.strip()))
            self._stop.wait(max(0.0, self.period - (time.monotonic() - started)))
        if self._conn is not None:
            self._conn.close()

    def _fresh(self) -> tuple[int, str]:
        try:
            return self.caddy.get(self.host, timeout=10)
        except (ConnectionResetError, http.client.RemoteDisconnected):
            # Reset before any answer: Caddy rebinds its listener on each config switch and
            # the kernel resets connections still queued on the old socket (README,
            # "Zero-downtime updates"). Clients retry such an idempotent request; so do we,
            # once. A 502 or a wrong answer is never retried.
            self.retried += 1
            return self.caddy.get(self.host, timeout=10)

    def _reused(self) -> tuple[int, str]:
        reused = self._conn is not None
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.caddy.proxy_port, timeout=10)
        try:
            self._conn.request("GET", "/", headers={"Host": self.host})
            response = self._conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self._conn.close()
            self._conn = None
            if not reused:
                raise
            self.retried += 1
            return self._reused()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise

    @property
    def failures(self) -> list[tuple[float, int, str]]:
        return [r for r in self.results if r[1] != 200]


def test_start_first_update_under_steady_load_drops_no_request(routed: Routed) -> None:
    """A client sending a request every 20 ms through the whole rollout sees no failure:
    new replicas join only once healthy, old ones leave the proxy before they stop."""
    routed.commit({"apps/web.yaml": app("web", "web.test", replicas=2)})
    routed.trueup("apply", check=True)
    fresh = Load(routed.caddy, "web.test")
    reused = Load(routed.caddy, "web.test", keepalive=True)
    with fresh, reused:
        time.sleep(0.5)
        routed.commit({"apps/web.yaml": app("web", "web.test", replicas=2, version="v2")})
        started = time.monotonic()
        applied = routed.trueup("apply", check=True)
        rollout_s = time.monotonic() - started
        time.sleep(0.5)
    assert "ok     web update" in applied.stdout
    for load in (fresh, reused):
        versions = [body.split()[0] for _, status, body in load.results if status == 200]
        print(
            f"keepalive={load.keepalive}: rollout {rollout_s:.1f}s, {len(load.results)} "
            f"requests, {len(load.failures)} failed, {load.retried} retried after a reset or "
            f"close before any answer, v1={versions.count('v1')} v2={versions.count('v2')}"
        )
        assert load.failures == []
        assert load.retried <= 5  # at most about one per config switch, not a steady loss
        assert len(load.results) >= rollout_s / 0.05
        assert "v1" in versions and "v2" in versions
        assert set(versions[-5:]) == {"v2"}
        served_last = {body.split()[1] for _, _, body in load.results[-10:]}
        assert served_last <= routed.short_ids("web")


def test_unreachable_caddy_fails_routes_only_and_a_restarted_one_gets_them_back(
    routed: Routed,
) -> None:
    """With Caddy down, apply still converges the containers and exits 1 saying routes are
    stale; once Caddy is back (or restarted with its empty config) one pass restores them."""
    routed.caddy.stop()
    routed.commit({"apps/web.yaml": app("web", "web.test")})
    down = routed.trueup("apply")
    assert down.returncode == 1, down.stdout + down.stderr
    assert "ok     web create" in down.stdout
    assert "FAILED routes:" in down.stdout and "stale" in down.stdout
    assert len(routed.short_ids("web")) == 1

    routed.caddy.start()
    diff = routed.trueup("diff", "--output", "json")
    assert diff.returncode == 1
    assert [(c["app"], c["action"]) for c in json.loads(diff.stdout)["changes"]] == [
        ("web", "route")
    ]
    routed.trueup("apply", check=True)
    assert routed.answers("web.test", 1)[0].startswith("v1 ")

    routed.caddy.restart()
    again = routed.trueup("apply", check=True)
    assert "ok     web route" in again.stdout
    assert routed.answers("web.test", 1)[0].startswith("v1 ")
