"""`trueup notify test` against a real loopback server, and URLs kept out of logs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from structlog.testing import capture_logs

from controller.notify.delivery import redact
from controller.notify.destinations import Webhook
from controller.notify.events import Event
from controller.notify.message import Notice
from controller.notify.sender import Channel


def start_server(status: int, bodies: list[bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def config(tmp_path: Path, urls: dict[str, str]) -> Path:
    dests = []
    for name, url in urls.items():
        (tmp_path / f"{name}.url").write_text(url)
        dests.append({"name": name, "type": "webhook", "url_file": str(tmp_path / f"{name}.url")})
    path = tmp_path / "trueup.yaml"
    path.write_text(json.dumps({"notifications": {"destinations": dests}}))
    return path


def notify_test(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "controller", "notify", "test", "--config", str(path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_notify_test_sends_and_reports_the_answer(tmp_path: Path) -> None:
    """The named destination gets a test message; its answer is printed; exit 0."""
    bodies: list[bytes] = []
    server = start_server(204, bodies)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        done = notify_test(config(tmp_path, {"ops": url, "other": url}), "ops")
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ops: ok HTTP 204"
    assert len(bodies) == 1 and json.loads(bodies[0])["data"]["events"][0]["kind"] == "deployed"


def test_notify_test_names_an_unknown_destination(tmp_path: Path) -> None:
    """An unknown name exits 2 listing the configured ones."""
    done = notify_test(config(tmp_path, {"ops": "http://127.0.0.1:9/x"}), "nope")
    assert done.returncode == 2
    assert "no destination 'nope' (destinations: ops)" in done.stderr


async def test_a_token_in_a_url_never_reaches_the_logs() -> None:
    """A destination that cannot be reached is logged and recorded with its URL redacted."""
    token_url = "http://user:s3cr3t-token@127.0.0.1:9/hooks/s3cr3t-path?token=s3cr3t-q"
    hook = Webhook("ops", token_url, None, frozenset({"deployed"}), timeout=2)
    results = []

    async def no_sleep(s: float) -> None:
        return None

    channel = Channel(
        "ops", max_per_minute=600, report=lambda n, r: results.append(r), sleep=no_sleep
    )
    notice = Notice("t", None, "", (Event("web", "deployed", "created"),))
    with capture_logs() as logs:
        channel.offer(lambda: hook.send(notice))
        job = channel.queue.get_nowait()
        from controller.notify.delivery import with_retries

        results.append(await with_retries(job, sleep=no_sleep))
    assert results[0].outcome == "failed"
    text = repr(results) + repr(logs) + repr(hook)
    assert "s3cr3t" not in text
    assert redact(token_url) == "http://127.0.0.1:9/…"
