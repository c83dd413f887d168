"""Notifications and commit statuses from a real `trueup run` (subprocess, real dockerd), told
to HTTP servers on loopback that record what they receive.

One story, in order: a deploy, a bad commit (one failure), five more passes (nothing), the
fix (one recovery with the field diff), a no-op commit (nothing), a restart (nothing), and a
destination that hangs while a pass still completes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.gitutil import commit_files, git
from tests.integration.test_controller import Controller, ctl, wait_for, web

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]
__all__ = ["ctl"]

SECRET = b"hook-secret-1"


@dataclass
class Recorder:
    """What the loopback server received: webhook messages and GitHub-shaped statuses."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    bad_signatures: int = 0
    broken: int = 0
    hang: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def serve(rec: Recorder) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path.startswith("/broken"):
                rec.broken += 1
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.startswith("/hook"):
                want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get("X-Trueup-Signature", ""), want):
                    rec.bad_signatures += 1
                rec.messages.append(json.loads(body)["data"])
                if rec.hang.is_set():
                    rec.release.wait(60)
            else:
                auth = self.headers.get("Authorization", "")
                rec.statuses.append((self.path, json.loads(body), auth))
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    server, url = serve(rec)
    try:
        yield rec, url
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, url: str, listen: str) -> Path:
    (tmp / "hook.url").write_text(url + "/hook\n")
    (tmp / "hook.secret").write_text(SECRET.decode())
    (tmp / "broken.url").write_text(url + "/broken\n")
    (tmp / "gh.token").write_text("gh-token-1\n")
    (tmp / "api.token").write_text("api-token-1\n")
    config = {
        "listen": listen,
        "api_token_file": str(tmp / "api.token"),
        "notifications": {
            "destinations": [
                {
                    "name": "ops",
                    "type": "webhook",
                    "url_file": str(tmp / "hook.url"),
                    "secret_file": str(tmp / "hook.secret"),
                },
                {"name": "broken", "type": "webhook", "url_file": str(tmp / "broken.url")},
            ],
            "commit_status": {
                "provider": "github",
                "token_file": str(tmp / "gh.token"),
                "api_url": url + "/gh",
                "repo_url": "https://github.com/team/app.git",
            },
            "external_url": "https://trueup.example",
        },
    }
    path = tmp / "config.yaml"
    path.write_text(json.dumps(config))
    return path


def passes(ctl: Controller) -> int:
    return sum(1 for e in ctl.events() if e.get("event") == "reconcile_pass")


def reconcile(listen: str) -> None:
    request = urllib.request.Request(
        f"http://{listen}/api/v1/reconcile",
        method="POST",
        headers={"Authorization": "Bearer api-token-1"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202


def failed_deliveries(listen: str) -> float:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith('trueup_notifications_total{destination="broken",result="failed"}'):
            return float(line.split()[-1])
    return 0.0


def states(rec: Recorder, sha: str) -> list[str]:
    return [body["state"] for path, body, _ in rec.statuses if path.endswith(sha)]


def settle(ctl: Controller, rec: Recorder) -> None:
    """Wait until the passes in flight are done and their deliveries arrived."""
    done = passes(ctl)
    wait_for(lambda: passes(ctl) >= done, 5, "passes")
    quiet = [len(rec.messages) + len(rec.statuses)]

    def still() -> bool:
        now = len(rec.messages) + len(rec.statuses)
        same = now == quiet[0]
        quiet[0] = now
        return same

    wait_for(still, 10, "deliveries to settle")


def test_run_notifies_precisely_and_posts_commit_statuses(
    ctl: Controller, recorder: tuple[Recorder, str], tmp_path: Path
) -> None:
    """Failure once, silence while unchanged, recovery once with the diff; statuses once."""
    rec, url = recorder
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path, url, listen)
    ctl.start("--config", str(config))
    first = git(ctl.repo, "rev-parse", "HEAD")
    wait_for(lambda: ctl.converged("1", 2), 90, "the first deploy")
    wait_for(lambda: states(rec, first) == ["pending", "success"], 20, "first statuses")
    wait_for(lambda: len(rec.messages) == 1, 10, "the deploy message")
    assert rec.messages[0]["events"][0]["kind"] == "deployed"

    bad = commit_files(
        ctl.repo, {"apps/web.yaml": web("2").replace("replicas", "replcas")}, "Break web"
    )
    wait_for(lambda: states(rec, bad) == ["failure"], 30, "the failure status")
    wait_for(lambda: len(rec.messages) == 2, 10, "the failure message")
    failure = rec.messages[1]
    assert failure["subject"] == "Break web" and failure["severity"] == "error"
    assert "replcas" in failure["summary"]
    for _ in range(5):
        before = passes(ctl)
        reconcile(listen)
        wait_for(lambda b=before: passes(ctl) > b, 30, "a pass")
    settle(ctl, rec)
    assert len(rec.messages) == 2 and states(rec, bad) == ["failure"]

    fix = commit_files(ctl.repo, {"apps/web.yaml": web("2")}, "Fix web")
    wait_for(lambda: ctl.converged("2", 2), 90, "the fix")
    wait_for(lambda: states(rec, fix) == ["pending", "success"], 20, "fix statuses")
    settle(ctl, rec)
    assert len(rec.messages) == 3
    summary = rec.messages[2]["summary"]
    assert "recovered" in summary and "env.VERSION 1 → 2" in summary, summary
    pending, success = [b for p, b, _ in rec.statuses if p.endswith(fix)]
    assert pending["description"] == "applying +0 ~1 -0"
    assert success["description"] == "deployed +0 ~1 -0"
    assert success["context"] == f"trueup/{ctl.instance}"
    assert success["target_url"].startswith("https://trueup.example/passes/")
    assert all(auth == "Bearer gh-token-1" for _, _, auth in rec.statuses)

    noop = commit_files(ctl.repo, {"NOTES": "nothing"}, "Notes only")
    wait_for(lambda: states(rec, noop) == ["success"], 30, "the no-op's status")
    settle(ctl, rec)
    assert len(rec.messages) == 3

    wait_for(lambda: failed_deliveries(listen) >= 1, 30, "the broken destination's failure")
    assert rec.broken >= 4  # its retries, all while the passes above went on
    assert ctl.stop() == 0
    posted = len(rec.statuses)
    restarted = passes(ctl)
    ctl.start("--config", str(config))
    wait_for(lambda: passes(ctl) > restarted, 60, "a pass after the restart")
    settle(ctl, rec)
    assert len(rec.messages) == 3 and len(rec.statuses) == posted
    assert rec.bad_signatures == 0

    rec.hang.set()  # the destination now takes every message and never answers
    commit_files(ctl.repo, {"apps/web.yaml": web("3")}, "Roll web to 3")
    wait_for(lambda: len(rec.messages) == 4, 90, "the hanging delivery")
    wait_for(lambda: ctl.converged("3", 2), 90, "the pass while the destination hangs")
    before = passes(ctl)
    reconcile(listen)
    wait_for(lambda: passes(ctl) > before, 30, "another pass while it hangs")
    rec.release.set()
    assert ctl.stop() == 0


def test_a_stopped_controller_still_delivers_its_queued_notification(
    ctl: Controller, tmp_path: Path
) -> None:
    """SIGTERM while the deploy's message waits for its retry (the destination answered 503,
    Retry-After 2): the controller delivers it before it exits, within its shutdown grace,
    instead of dropping the queue with its workers."""
    tries: list[bytes] = []
    first = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            tries.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            busy = len(tries) == 1
            self.send_response(503 if busy else 201)
            if busy:
                self.send_header("Retry-After", "2")
            self.send_header("Content-Length", "0")
            self.end_headers()
            if busy:
                first.set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "busy.url").write_text(f"http://127.0.0.1:{server.server_address[1]}/\n")
        config = tmp_path / "config.yaml"
        destination = {"name": "busy", "type": "webhook", "url_file": str(tmp_path / "busy.url")}
        config.write_text(json.dumps({"notifications": {"destinations": [destination]}}))
        ctl.start("--config", str(config), "--listen", "off")
        assert first.wait(90), "the deploy's first delivery attempt"
        assert ctl.stop() == 0
    finally:
        server.shutdown()
        server.server_close()
    assert len(tries) == 2 and tries[0] == tries[1]
    assert json.loads(tries[1])["data"]["events"][0]["kind"] == "deployed"
    sent = [e for e in ctl.events() if e.get("event") == "notification_sent"]
    assert [(e["destination"], e["result"]) for e in sent] == [("busy", "ok")]
    assert any(e.get("event") == "notifications_flushing" for e in ctl.events())


def test_manual_sync_tells_that_a_revision_waits_for_approval(
    ctl: Controller, recorder: tuple[Recorder, str], tmp_path: Path
) -> None:
    """`trueup run --sync manual`: the first commit is planned, not applied, and the webhook
    hears once that it waits for approval (not again on the next pass)."""
    rec, url = recorder
    (tmp_path / "hook.url").write_text(url + "/hook\n")
    (tmp_path / "hook.secret").write_text(SECRET.decode())
    hook = {"name": "ops", "type": "webhook", "url_file": str(tmp_path / "hook.url"),
            "secret_file": str(tmp_path / "hook.secret")}  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"notifications": {"destinations": [hook]}}))
    listen = f"127.0.0.1:{free_port()}"
    (tmp_path / "api.token").write_text("api-token-1\n")
    ctl.start("--config", str(config), "--sync", "manual", "--listen", listen,
              "--api-token-file", str(tmp_path / "api.token"))  # fmt: skip
    sha = git(ctl.repo, "rev-parse", "HEAD")
    wait_for(lambda: len(rec.messages) == 1, 60, "the approval message")
    before = passes(ctl)
    reconcile(listen)
    wait_for(lambda: passes(ctl) > before, 30, "another pass")
    settle(ctl, rec)
    (message,) = rec.messages
    assert (
        message["summary"] == f'controller: awaiting approval: {sha[:12]} "initial": +1 ~0 -0 (web)'
    )
    assert [e["kind"] for e in message["events"]] == ["awaiting_approval"]
    assert ctl.containers() == [] and rec.bad_signatures == 0
    assert ctl.stop() == 0
