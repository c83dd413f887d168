"""`trueup run`'s HTTP surface against a real dockerd, as an operator and a git host use it.

The controller runs as a subprocess with the resync interval set to ten minutes and follows a
remote (``file://``) repository, which is polled, never watched: anything that happens within
seconds was caused by a request to the server. Every address is 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.http.webhooks import sign
from tests.gitutil import commit_files, make_repo
from tests.integration.test_controller import Controller, wait_for, web

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

TOKEN = "api-token-for-tests"
SECRET = "webhook-secret-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Http:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base + path, data=body if method == "POST" else None, method=method,
            headers=headers or {},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def json(self, path: str) -> Any:
        status, body = self.call("GET", path)
        return json.loads(body) if status == 200 else None

    def metric(self, name: str, **labels: str) -> float:
        _, text = self.call("GET", "/metrics")
        for family in text_string_to_metric_families(text.decode()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return 0.0

    def synced(self) -> bool:
        doc = self.json("/api/v1/status")
        apps = doc["apps"] if doc else []
        return bool(apps) and all(a["sync"] == "Synced" and a["health"] == "Healthy" for a in apps)

    def reconcile(self) -> int:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        return self.call("POST", "/api/v1/reconcile", headers=auth)[0]


@pytest.fixture
def running(tmp_path: Path, instance: str) -> Iterator[tuple[Controller, Http]]:
    """`trueup run` on a file:// remote, with a listen port, an API token and a secret."""
    client = docker.from_env()
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": web("1", replicas=1)})
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "secret").write_text(SECRET + "\n")
    ctl = Controller(repo, tmp_path / "state", instance, client, tmp_path / "controller.log")
    port = free_port()
    ctl.start("--repo", f"file://{repo}",  # the last --repo wins: a remote, polled
              "--listen", f"127.0.0.1:{port}",
              "--api-token-file", str(tmp_path / "token"),
              "--webhook-secret-file", str(tmp_path / "secret"))  # fmt: skip
    http = Http(port)
    try:
        wait_for(lambda: http.synced() and settled(ctl, "1"), 60, "first convergence")
        assert any(e.get("event") == "git_mirror_created" for e in ctl.events())
        yield ctl, http
        assert ctl.stop() == 0
    finally:
        if ctl.process is not None and ctl.process.poll() is None:
            ctl.process.kill()
            ctl.process.wait()
        client.close()


def settled(ctl: Controller, version: str) -> bool:
    """One healthy replica of ``version``; a container removed while being listed is not yet."""
    try:
        return ctl.converged(version, 1)
    except docker.errors.NotFound:
        return False


def settle(http: Http) -> None:
    """Wait until passes stop coming (the startup pass's follow-up included)."""
    last = -1.0
    while (now := http.metric("trueup_reconcile_duration_seconds_count")) != last:
        last = now
        time.sleep(0.5)


def test_real_scrape_passes_promtool_and_a_noop_pass_costs_one_list(
    running: tuple[Controller, Http],
) -> None:
    """After a few passes `promtool check metrics` accepts the scrape, and a manual pass on a
    converged host adds exactly one engine API call: one `list`."""
    ctl, http = running
    settle(http)
    for _ in range(2):
        before = http.metric("trueup_reconcile_duration_seconds_count")
        assert http.reconcile() == 202
        wait_for(lambda b=before: http.metric("trueup_reconcile_duration_seconds_count") > b,
                 10, "the requested pass")  # fmt: skip

    calls_before = {op: http.metric("trueup_runtime_api_calls_total", op=op)
                    for op in ("list", "inspect", "create", "events", "ping")}  # fmt: skip
    noop_before = http.metric("trueup_reconcile_total", result="noop")
    assert http.reconcile() == 202
    wait_for(lambda: http.metric("trueup_reconcile_total", result="noop") > noop_before,
             10, "the no-op pass")  # fmt: skip
    calls_after = {op: http.metric("trueup_runtime_api_calls_total", op=op) for op in calls_before}
    assert calls_after["list"] == calls_before["list"] + 1
    assert {k: v for k, v in calls_after.items() if k != "list"} == {
        k: v for k, v in calls_before.items() if k != "list"
    }

    status, scrape = http.call("GET", "/metrics")
    assert status == 200
    for name in ("trueup_reconcile_total", "trueup_reconcile_duration_seconds_bucket",
                 "trueup_app_info", "trueup_revision_info", "trueup_runtime_api_calls_total",
                 "trueup_last_successful_reconcile_timestamp_seconds"):  # fmt: skip
        assert name.encode() in scrape
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/ensure-test-tools installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()

    # `trueup status` gets sync from the API (the engine alone would say Unknown)
    out = subprocess.run(
        [sys.executable, "-m", "controller", "status", "--output", "json",
         "--instance", ctl.instance, "--state-dir", str(ctl.state.parent / "elsewhere"),
         "--listen", http.base.removeprefix("http://")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert [(a["name"], a["sync"]) for a in json.loads(out.stdout)["apps"]] == [("web", "Synced")]


def test_signed_push_webhook_converges_a_remote_commit_now(
    running: tuple[Controller, Http],
) -> None:
    """With a ten-minute poll, a signed GitHub push webhook gets a new commit rolled out in
    seconds; the unsigned one before it changes nothing."""
    ctl, http = running
    commit_files(ctl.repo, {"apps/web.yaml": web("2", replicas=1)}, "v2")
    body = json.dumps({"ref": "refs/heads/main", "after": "f" * 40}).encode()
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
    assert http.call("POST", "/hooks/github", body, headers)[0] == 401
    time.sleep(2)
    assert ctl.versions() == ["1"]
    signed = {**headers, "X-Hub-Signature-256": sign(SECRET.encode(), body)}
    assert http.call("POST", "/hooks/github", body, signed)[0] == 202
    took = wait_for(lambda: settled(ctl, "2"), 45, "the pushed commit to converge")
    assert took < 30
    assert http.metric("trueup_webhook_requests_total", provider="github", result="accepted") == 1


def test_read_token_hooks_listener_and_body_cap_of_a_real_controller(
    tmp_path: Path, instance: str
) -> None:
    """`trueup run --api-read-token-file --hooks-listen --webhook-max-body 1Ki`: reads need
    the token (probes do not), `trueup status` reads with it, the hooks answer only on their
    own port, an unsigned post is refused before its body is sent, and a signed body over
    1 KiB gets 413 by its Content-Length alone."""
    client = docker.from_env()
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": web("1", replicas=1)})
    (tmp_path / "read").write_text("read-token-for-tests\n")
    (tmp_path / "secret").write_text(SECRET + "\n")
    ctl = Controller(repo, tmp_path / "state", instance, client, tmp_path / "controller.log")
    port, hooks_port = free_port(), free_port()
    ctl.start("--repo", f"file://{repo}", "--listen", f"127.0.0.1:{port}",
              "--hooks-listen", f"127.0.0.1:{hooks_port}",
              "--api-read-token-file", str(tmp_path / "read"),
              "--webhook-secret-file", str(tmp_path / "secret"),
              "--webhook-max-body", "1Ki")  # fmt: skip
    http, hooks = Http(port), Http(hooks_port)
    read = {"Authorization": "Bearer read-token-for-tests"}
    try:
        wait_for(lambda: http.call("GET", "/healthz")[0] == 200, 30, "the main listener")
        assert http.call("GET", "/api/v1/status")[0] == 401
        assert http.call("GET", "/metrics")[0] == 401
        assert http.call("GET", "/api/v1/status", headers={"Authorization": "Bearer x"})[0] == 401

        def synced() -> bool:
            status, body = http.call("GET", "/api/v1/status", headers=read)
            apps = json.loads(body)["apps"] if status == 200 else []
            return bool(apps) and all(a["sync"] == "Synced" for a in apps)

        wait_for(synced, 60, "first convergence, read with the token")
        assert http.call("GET", "/metrics", headers=read)[0] == 200
        assert http.call("GET", "/readyz")[0] == 200

        out = subprocess.run(
            [sys.executable, "-m", "controller", "status", "--output", "json",
             "--instance", instance, "--state-dir", str(tmp_path / "elsewhere"),
             "--listen", f"127.0.0.1:{port}",
             "--api-read-token-file", str(tmp_path / "read")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert [(a["name"], a["sync"]) for a in json.loads(out.stdout)["apps"]] == [
            ("web", "Synced")
        ]

        body = json.dumps({"ref": "refs/heads/main"}).encode()
        signed = {"X-GitHub-Event": "push", "Content-Type": "application/json",
                  "X-Hub-Signature-256": sign(SECRET.encode(), body)}  # fmt: skip
        assert http.call("POST", "/hooks/github", body, signed)[0] == 404
        assert hooks.call("GET", "/api/v1/status", headers=read)[0] == 404
        assert hooks.call("GET", "/healthz")[0] == 404
        assert hooks.call("POST", "/hooks/github", body, signed)[0] == 202

        for headers, want in (
            ({"X-GitHub-Event": "push", "Content-Length": "900"}, b" 401 "),
            ({**signed, "Content-Length": "2048"}, b" 413 "),
        ):
            with socket.create_connection(("127.0.0.1", hooks_port), timeout=5) as raw:
                head = "POST /hooks/github HTTP/1.1\r\nHost: x\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in headers.items()
                )
                raw.sendall(head.encode() + b"\r\n")  # the body never follows
                assert want in raw.recv(200).split(b"\r\n")[0] + b" "
        assert ctl.stop() == 0
    finally:
        if ctl.process is not None and ctl.process.poll() is None:
            ctl.process.kill()
            ctl.process.wait()
        client.close()
