"""`trueup run` as a long-running process against a real dockerd and a real git repository.

The controller is started as a subprocess, as an operator would; the resync interval is set to
ten minutes so everything observed here is driven by the git watch and the engine's events.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gitutil import commit_files, git, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: web}}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo ok > /tmp/healthz && exec httpd -f -p 8080 -h /tmp"]
  replicas: {replicas}
  env: {{VERSION: "{version}"}}
  ports: [{{name: http, containerPort: 8080}}]
  healthCheck: {{http: {{path: /healthz, port: http}}, interval: 1s, timeout: 1s, retries: 3}}
  init: true
  stopGracePeriod: 1s
"""


def web(version: str, replicas: int = 2) -> str:
    return WEB.format(version=version, replicas=replicas)


@dataclass
class Controller:
    repo: Path
    state: Path
    instance: str
    client: docker.DockerClient
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "controller", "run", "--repo", str(self.repo),
               "--instance", self.instance, "--state-dir", str(self.state),
               "--interval", "10m", *extra]  # fmt: skip
        out = open(self.log, "ab")  # noqa: SIM115  # closed when the process is reaped
        env = {**os.environ, "TRUEUP_LOG_FORMAT": "json"}
        self.process = subprocess.Popen(cmd, stdout=out, stderr=out, env=env)
        return self.process

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def containers(self) -> list[Any]:
        """This instance's web containers. The SDK lists, then inspects each, and a rollout may
        remove one in between: ignore_removed skips it instead of raising NotFound."""
        label = [f"trueup.instance={self.instance}", "trueup.app=web"]
        return self.client.containers.list(ignore_removed=True, all=True, filters={"label": label})

    def versions(self, rows: list[Any] | None = None) -> list[str]:
        out = []
        for c in self.containers() if rows is None else rows:
            env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
            out.append(env.get("VERSION", ""))
        return sorted(out)

    def synced(self) -> bool:
        """The controller's own status file says every app is Synced and Healthy."""
        try:
            doc = json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            return False
        apps = doc.get("apps", [])
        return bool(apps) and all(a["sync"] == "Synced" and a["health"] == "Healthy" for a in apps)

    def converged(self, version: str, replicas: int = 2) -> bool:
        rows = self.containers()
        return self.synced() and (
            len(rows) == replicas
            and self.versions(rows) == [version] * replicas
            and all(c.attrs["State"].get("Health", {}).get("Status") == "healthy" for c in rows)
        )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


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


def test_commit_converges_without_waiting_for_interval(ctl: Controller) -> None:
    """A commit made with the git CLI is rolled out within seconds, interval ten minutes."""
    ctl.start()
    wait_for(lambda: ctl.converged("1"), 60, "first convergence")
    commit_files(ctl.repo, {"apps/web.yaml": web("2")}, "v2")
    took = wait_for(lambda: ctl.converged("2"), 60, "commit to converge")
    assert took < 30
    assert ctl.stop() == 0


def test_removed_container_is_replaced_from_events(ctl: Controller) -> None:
    """`docker rm -f` of a replica is healed from the event stream, not the timer."""
    ctl.start()
    wait_for(lambda: ctl.converged("1"), 60, "first convergence")
    victim = ctl.containers()[0]
    victim.remove(force=True)
    wait_for(lambda: ctl.converged("1") and victim.id not in {c.id for c in ctl.containers()},
             30, "the replica to be replaced")  # fmt: skip
    triggers = [e.get("trigger", "") for e in ctl.events() if e.get("event") == "reconcile_pass"]
    assert any("event:" in t for t in triggers)
    assert ctl.stop() == 0


def test_second_instance_refuses(ctl: Controller) -> None:
    """A second controller on the same state dir, or for the same instance on the same
    engine from another state dir, exits 2 naming the holder's pid."""
    first = ctl.start()
    wait_for(lambda: (ctl.state / "controller.lock").exists(), 20, "the lock")
    wait_for(lambda: ctl.converged("1"), 60, "first convergence")
    second = subprocess.run(
        [sys.executable, "-m", "controller", "run", "--repo", str(ctl.repo),
         "--instance", ctl.instance, "--state-dir", str(ctl.state)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert second.returncode == 2
    assert f"pid {first.pid}" in second.stderr
    elsewhere = subprocess.run(
        [sys.executable, "-m", "controller", "run", "--repo", str(ctl.repo), "--listen", "off",
         "--instance", ctl.instance, "--state-dir", str(ctl.state.parent / "other-state")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert elsewhere.returncode == 2, elsewhere.stderr
    assert "already driven by a trueup controller" in elsewhere.stderr
    assert f"pid {first.pid}" in elsewhere.stderr
    assert ctl.stop() == 0


def test_sigterm_exits_zero_and_apps_keep_running(ctl: Controller) -> None:
    """Stopping the controller never stops the apps."""
    ctl.start()
    wait_for(lambda: ctl.converged("1"), 60, "first convergence")
    ids = {c.id for c in ctl.containers()}
    assert ctl.stop(signal.SIGTERM) == 0
    time.sleep(1)
    assert {c.id for c in ctl.containers() if c.status == "running"} == ids
    history = subprocess.run(
        [sys.executable, "-m", "controller", "history", "--state-dir", str(ctl.state),
         "--output", "json"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    passes = json.loads(history.stdout)["passes"]
    assert passes[-1]["trigger"] == "startup" and passes[-1]["result"] == "changed"


def test_sigkill_mid_rollout_then_restart_converges(ctl: Controller) -> None:
    """Killed during a rolling update, a restarted controller finishes with exactly the
    desired replicas: no duplicate, no orphan, and at least one replica serving throughout."""
    commit_files(ctl.repo, {"apps/web.yaml": web("1", replicas=3)}, "three")
    ctl.start()
    wait_for(lambda: ctl.converged("1", 3), 60, "first convergence")
    commit_files(ctl.repo, {"apps/web.yaml": web("2", replicas=3)}, "v2")
    serving: list[int] = []

    def new_one_started() -> bool:
        rows = ctl.containers()
        serving.append(sum(1 for c in rows if c.status == "running"))
        return "2" in ctl.versions(rows)

    wait_for(new_one_started, 30, "the rollout to start")
    ctl.stop(signal.SIGKILL)
    assert min(serving) >= 1
    ctl.start()
    wait_for(lambda: ctl.converged("2", 3), 90, "convergence after the restart")
    replicas = sorted(c.labels["trueup.replica"] for c in ctl.containers())
    assert replicas == ["0", "1", "2"]
    assert ctl.stop() == 0


class BreakableProxy:
    """A unix-socket proxy to the Docker socket that can be cut and restored, standing in for
    an engine that goes away and comes back (the engine itself is not disturbed)."""

    def __init__(self, upstream: str, path: Path) -> None:
        self.upstream = upstream
        self.path = path
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)


def test_engine_outage_survived_without_recreating(ctl: Controller, tmp_path: Path) -> None:
    """The engine goes away for a while and comes back: the controller waits, resumes, and no
    app is recreated (an unreachable engine is never taken for "nothing runs")."""
    proxy = BreakableProxy("/var/run/docker.sock", tmp_path / "engine.sock")
    proxy.start()
    try:
        ctl.start("--runtime", "docker", "--runtime-url", f"unix://{proxy.path}")
        wait_for(lambda: ctl.converged("1"), 60, "first convergence")
        ids = {c.id for c in ctl.containers()}
        proxy.cut()
        time.sleep(4)
        proxy.start()
        sha = commit_files(ctl.repo, {"README.md": "touch the repo, not the app\n"}, "docs")

        def passed_after_outage() -> bool:
            passes = [e for e in ctl.events() if e.get("event") == "reconcile_pass"]
            return any(e.get("revision") == sha for e in passes)

        wait_for(passed_after_outage, 40, "a pass after the engine came back")
        assert {c.id for c in ctl.containers()} == ids
        names = [e.get("event") for e in ctl.events()]
        assert "reconcile_failed" in names or "events_stream_failed" in names
        assert ctl.process is not None and ctl.process.poll() is None
        assert ctl.stop() == 0
    finally:
        proxy.cut()


JOB = """\
apiVersion: trueup/v1
kind: App
metadata: {name: job}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  init: true
  stopGracePeriod: 1s
"""


def test_refused_deletion_of_every_app_is_out_of_sync(ctl: Controller) -> None:
    """A commit removing every manifest is refused under `trueup run` too: both apps keep
    running and show OutOfSync with the refusal (status file, `trueup status`, the API, the
    trueup_app_info metric) instead of looking Synced."""
    commit_files(ctl.repo, {"apps/job.yaml": JOB}, "add job")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    listen = f"127.0.0.1:{port}"
    ctl.start("--listen", listen)
    wait_for(lambda: ctl.converged("1") and len(_status_apps(ctl)) == 2, 60, "convergence")
    label = f"trueup.instance={ctl.instance}"
    running = {
        c.id for c in ctl.client.containers.list(ignore_removed=True, filters={"label": label})
    }
    git(ctl.repo, "rm", "-q", "apps/web.yaml", "apps/job.yaml")
    commit_files(ctl.repo, {"README.md": "no apps any more\n"}, "remove every app")

    def refused() -> bool:
        apps = _status_apps(ctl)
        return len(apps) == 2 and all("deletion refused" in a["message"] for a in apps)

    wait_for(refused, 30, "the refusal in the status")
    for app in _status_apps(ctl):
        assert app["sync"] == "OutOfSync" and "allow_empty" in app["message"], app
    shown = subprocess.run(
        [sys.executable, "-m", "controller", "status", "--output", "json", "--listen", listen,
         "--instance", ctl.instance, "--state-dir", str(ctl.state)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert {(a["name"], a["sync"]) for a in json.loads(shown.stdout)["apps"]} == {
        ("job", "OutOfSync"),
        ("web", "OutOfSync"),
    }
    assert all("deletion refused" in a["message"] for a in json.loads(shown.stdout)["apps"])
    base = f"http://{listen}"
    with urllib.request.urlopen(f"{base}/api/v1/status", timeout=10) as response:
        api = json.loads(response.read())
    assert all(a["sync"] == "OutOfSync" and "deletion refused" in a["message"]
               for a in api["apps"]) and len(api["apps"]) == 2  # fmt: skip
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
    info = {
        (s.labels["app"], s.labels["sync_status"])
        for family in families
        for s in family.samples
        if s.name == "trueup_app_info" and s.value == 1
    }
    assert info == {("job", "OutOfSync"), ("web", "OutOfSync")}
    assert {
        c.id for c in ctl.client.containers.list(ignore_removed=True, filters={"label": label})
    } == running
    assert ctl.stop() == 0


def _status_apps(ctl: Controller) -> list[dict[str, Any]]:
    """The apps of the controller's status file (empty until it wrote one)."""
    try:
        apps = json.loads((ctl.state / "status.json").read_text()).get("apps", [])
    except (OSError, ValueError):
        return []
    return list(apps)
