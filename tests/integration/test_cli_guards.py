"""Settings the command line must refuse before acting: an engine named but not answering, an
instance name that is not one. Each is run as a user runs trueup (a subprocess), next to a real
dockerd that must stay untouched, and a loopback HTTP server standing in for Caddy's admin API
that records every request it gets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from tests.gitutil import make_repo
from tests.integration.test_controller import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

APP = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec: {image: busybox:1.36}\n"
NOWHERE = "unix:///nonexistent.sock"


class FakeAdmin:
    """A loopback HTTP server that answers every GET with ``null`` and records the paths."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"null")

            do_PUT = do_PATCH = do_POST = do_GET  # http.server's naming

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    server = FakeAdmin()
    try:
        yield server
    finally:
        server.close()


def trueup(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        capture_output=True, text=True, timeout=120, env=full_env, cwd=cwd,
    )  # fmt: skip


def test_diff_with_an_unreachable_docker_host_exits_2_naming_it(
    tmp_path: Path, instance: str
) -> None:
    """DOCKER_HOST names a socket that is not there: `trueup diff` exits 2 naming it, and
    plans nothing against the local engine (which answers)."""
    make_repo(tmp_path / "repo", {"apps/web.yaml": APP})
    result = trueup("diff", "--repo", str(tmp_path / "repo"), "--instance", instance,
                    "--state-dir", str(tmp_path / "state"),
                    env={"DOCKER_HOST": NOWHERE})  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"DOCKER_HOST ({NOWHERE}) does not answer" in result.stderr
    assert "create" not in result.stdout and "web" not in result.stdout


def test_diff_with_an_unreachable_runtime_url_exits_2_naming_it(
    tmp_path: Path, instance: str
) -> None:
    """--runtime-url names the only engine too, whatever DOCKER_HOST says."""
    make_repo(tmp_path / "repo", {"apps/web.yaml": APP})
    result = trueup("diff", "--repo", str(tmp_path / "repo"), "--instance", instance,
                    "--state-dir", str(tmp_path / "state"), "--runtime-url", NOWHERE)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--runtime-url/runtime_url ({NOWHERE}) does not answer" in result.stderr


def test_run_with_an_unreachable_docker_host_waits_for_it_and_leaves_the_local_engine_alone(
    tmp_path: Path, instance: str
) -> None:
    """`trueup run` with DOCKER_HOST naming a missing socket keeps waiting for that engine
    (logging why) and never claims the instance or creates a container on the local one."""
    make_repo(tmp_path / "repo", {"apps/web.yaml": APP})
    log = tmp_path / "controller.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--repo", str(tmp_path / "repo"),
             "--instance", instance, "--state-dir", str(tmp_path / "state"), "--listen", "off"],
            stdout=out, stderr=out,
            env={**os.environ, "DOCKER_HOST": NOWHERE, "TRUEUP_LOG_FORMAT": "json"},
        )  # fmt: skip
    try:

        def waiting() -> bool:
            for line in log.read_text(errors="replace").splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "runtime_unavailable" and NOWHERE in event["error"]:
                    return True
            return False

        wait_for(waiting, 20, "runtime_unavailable naming DOCKER_HOST")
        time.sleep(1.5)  # the first retry, too, must stay on the named engine
        client = docker.from_env()
        try:
            label = {"label": f"trueup.instance={instance}"}
            assert client.containers.list(ignore_removed=True, all=True, filters=label) == []
            assert client.networks.list(names=[f"trueup-claim-{instance}"]) == []
        finally:
            client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


BAD = "x/../../.."


@pytest.mark.parametrize(
    "source", ["diff flag", "diff env", "apply flag", "status flag", "run flag", "run env",
               "run config"],
)  # fmt: skip
def test_an_invalid_instance_is_refused_from_every_source(
    tmp_path: Path, admin: FakeAdmin, source: str
) -> None:
    """`x/../../..` would turn trueup's Caddy server URL into `/config/apps/`: from the flag,
    TRUEUP_INSTANCE or the config file, every command exits 2 saying the name is invalid, and
    Caddy's admin API gets no request."""
    make_repo(tmp_path / "repo", {"apps/web.yaml": APP})
    command, how = source.split()
    args = [command, "--repo", str(tmp_path / "repo"), "--state-dir", str(tmp_path / "state")]
    if command == "status":
        args = [command, "--state-dir", str(tmp_path / "state")]
    if command in ("diff", "apply", "run"):
        args += ["--router", "caddy", "--caddy-admin", admin.url]
    if command == "run":
        args += ["--listen", "off"]
    env: dict[str, str] = {}
    if how == "flag":
        args += ["--instance", BAD]
    elif how == "env":
        env["TRUEUP_INSTANCE"] = BAD
    else:
        config = tmp_path / "trueup.yaml"
        config.write_text(f"instance: '{BAD}'\n")
        args += ["--config", str(config)]
    result = trueup(*args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid instance name 'x/../../..'" in result.stderr
    assert "Traceback" not in result.stderr
    assert admin.paths == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "off", "--hooks-listen", "127.0.0.1:0"], "hooks_listen needs the main"),
        (["--listen", "127.0.0.1:0", "--hooks-listen", "nowhere"], "invalid listen address"),
        (["--listen", "127.0.0.1:0", "--webhook-max-body", "10"], "webhook_max_body"),
        (["--listen", "127.0.0.1:0", "--webhook-max-body", "lots"], "webhook_max_body"),
    ],
)
def test_run_refuses_unusable_http_settings(
    tmp_path: Path, instance: str, args: list[str], message: str
) -> None:
    """A hooks listener without the main one, a bad hooks address or body cap: exit 2 with
    the reason, before any engine is contacted."""
    make_repo(tmp_path / "repo", {"apps/web.yaml": APP})
    result = trueup("run", "--repo", str(tmp_path / "repo"), "--instance", instance,
                    "--state-dir", str(tmp_path / "state"), *args,
                    env={"DOCKER_HOST": NOWHERE})  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
