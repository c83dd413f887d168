"""Suspend/resume and manual sync mode of a real `trueup run` on a real dockerd.

One controller in auto mode serves the suspend test (with a restart in the middle), one in
manual mode the approval test; both are subprocesses, as an operator runs them, with the
resync interval at ten minutes so only the git watch, the engine's events and the API drive
them. The API address is the one the controller records in ``status.json`` (it listens on a
free port).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.gitutil import commit_files, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

TOKEN = "ops-token"
WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: web}}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  env: {{VERSION: "{version}"}}
  init: true
  stopGracePeriod: 1s
"""


def wait_for(check: Callable[[], object], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Run:
    """One `trueup run` of an instance, and what it and the engine show."""

    tmp: Path
    instance: str
    client: docker.DockerClient
    process: subprocess.Popen[bytes] | None = None

    @property
    def repo(self) -> Path:
        return self.tmp / "repo"

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    def start(self, *extra: str) -> None:
        token = self.tmp / "token"
        token.write_text(TOKEN)
        cmd = [sys.executable, "-m", "controller", "run", "--repo", str(self.repo),
               "--instance", self.instance, "--state-dir", str(self.state), "--interval", "10m",
               "--listen", "127.0.0.1:0", "--api-token-file", str(token), *extra]  # fmt: skip
        log = open(self.tmp / "controller.log", "ab")  # noqa: SIM115  # closed when reaped
        env = {**os.environ, "TRUEUP_LOG_FORMAT": "json"}
        self.process = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        pid = self.process.pid
        wait_for(lambda: self.status().get("pid") == pid and self.status().get("api"), 30,
                 "the controller's first pass")  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=20) == 0

    def status(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def app(self) -> dict[str, Any]:
        return next((a for a in self.status().get("apps", []) if a["name"] == "web"), {})

    def containers(self) -> list[Any]:
        label = [f"trueup.instance={self.instance}", "trueup.app=web"]
        return self.client.containers.list(ignore_removed=True, all=True, filters={"label": label})

    def running(self, version: str, sync: str = "Synced") -> str | None:
        """The id of web's one replica when it runs ``version`` and status says so (Healthy,
        and ``sync``)."""
        rows = self.containers()
        if len(rows) != 1 or rows[0].status != "running":
            return None
        env = dict(e.split("=", 1) for e in rows[0].attrs["Config"]["Env"])
        synced = (self.app().get("sync"), self.app().get("health")) == (sync, "Healthy")
        return str(rows[0].id) if env.get("VERSION") == version and synced else None

    def call(self, method: str, path: str, body: object = None, token: str | None = TOKEN) -> Any:
        """(status code, JSON answer) of an API request."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(
            f"{self.status()['api']}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controller", *args, "--state-dir", str(self.state),
             "--api-token-file", str(self.tmp / "token")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip


def cleanup(client: docker.DockerClient, instance: str) -> None:
    label = f"trueup.instance={instance}"
    for c in client.containers.list(ignore_removed=True, all=True, filters={"label": label}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": label}):
        n.remove()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    client = docker.from_env()
    r = Run(tmp_path, f"t-{uuid.uuid4().hex[:10]}", client)
    make_repo(r.repo, {"apps/web.yaml": WEB.format(version="1")})
    try:
        yield r
    finally:
        if r.process is not None and r.process.poll() is None:
            r.process.kill()
            r.process.wait()
        cleanup(client, r.instance)
        client.close()


def test_suspend_survives_a_commit_and_a_restart_and_resume_applies(run: Run) -> None:
    """`trueup suspend web` (through the API): a commit changing web leaves its container
    as it runs, also after a controller restart, shown Suspended; its plan names the field;
    `trueup resume web` rolls it at once."""
    run.start()
    first = wait_for(lambda: run.running("1"), 60, "web to run version 1")
    done = run.cli("suspend", "web")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: run.app().get("health") == "Suspended", 15, "web shown Suspended")
    sha = commit_files(run.repo, {"apps/web.yaml": WEB.format(version="2")}, "web: v2")
    wait_for(lambda: run.status().get("revision") == sha, 30, "a pass at the new commit")
    code, plan = run.call("GET", "/api/v1/apps/web/plan")
    assert code == 200 and plan["skipped"].startswith("held: suspended")
    assert [c.id for c in run.containers()] == [first]
    run.stop()
    run.start()
    assert run.status()["suspended"] == ["web"]
    assert (run.app()["health"], run.app()["sync"]) == ("Suspended", "OutOfSync")
    assert [c.id for c in run.containers()] == [first]
    done = run.cli("resume", "web")
    assert done.returncode == 0, done.stderr
    took = time.monotonic()
    wait_for(lambda: run.running("2"), 30, "web to roll to version 2")
    assert time.monotonic() - took < 20  # at once, not at the ten-minute resync
    run.stop()


def test_manual_mode_waits_for_an_authorised_apply_and_keeps_healing(run: Run) -> None:
    """Manual mode: nothing applied before the first approval; a commit becomes pending
    with a plan naming the changed field, still only pending after a restart and shown by
    `trueup status`; apply without the token is 401, a stale revision 409; a killed replica
    of the approved revision comes back; the approved commit rolls."""
    run.start("--sync", "manual")
    first = wait_for(lambda: run.status().get("pending"), 30, "the first commit pending")
    assert run.containers() == []
    code, doc = run.call("POST", "/api/v1/apply", {"revision": first["revision"]})
    assert (code, doc["accepted"]) == (202, True)
    one = wait_for(lambda: run.running("1"), 60, "web to run the approved version 1")
    sha = commit_files(run.repo, {"apps/web.yaml": WEB.format(version="2")}, "web: v2")
    pending = wait_for(lambda: run.status().get("pending"), 30, "the new commit pending")
    assert pending["revision"] == sha and pending["apps"] == ["web"]
    code, plan = run.call("GET", "/api/v1/apps/web/plan")
    [change] = plan["changes"]
    assert change["action"] == "update"
    assert 'spec.env.VERSION: "1" → "2"' in change["diff"]
    run.stop()  # a restart keeps the approved revision and applies nothing new
    run.start("--sync", "manual")
    assert wait_for(lambda: run.status().get("pending"), 30, "pending again")["revision"] == sha
    assert run.running("1", "OutOfSync") == one
    shown = subprocess.run(
        [sys.executable, "-m", "controller", "status", "--instance", run.instance,
         "--state-dir", str(run.state)], capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert f"sync: manual (approved revision {first['revision'][:12]})" in shown.stdout
    assert f"pending: {sha[:12]} 'web: v2' changes web" in shown.stdout
    code, _ = run.call("POST", "/api/v1/apply", {"revision": sha}, token=None)
    assert code == 401
    code, doc = run.call("POST", "/api/v1/apply", {"revision": first["revision"]})
    assert code == 409 and doc["pending"]["revision"] == sha
    run.client.containers.get(one).remove(force=True)  # killed and gone
    healed = wait_for(lambda: run.running("1", "OutOfSync"), 30, "the replica healed")
    assert healed != one
    code, _ = run.call("POST", "/api/v1/apply", {"revision": sha})
    assert code == 202
    wait_for(lambda: run.running("2"), 60, "web to roll to the approved version 2")
    assert run.status()["pending"] is None and run.status()["approved_revision"] == sha
    run.stop()
