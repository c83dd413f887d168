"""A real Caddy for route tests: `caddy run` with an admin-only config on free loopback ports.

The fixture skips when no `caddy` binary is installed, unless TRUEUP_REQUIRE_DOCKER is set
(CI), in which case it fails. Caddy keeps its data in the test's temporary folder and does
not persist API changes, so a restart comes back with the admin-only config, as a freshly
restarted proxy does.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_DOCKER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Caddy:
    """One Caddy process under test; ``proxy_listen`` is the address to give trueup."""

    workdir: Path
    admin_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def proxy_listen(self) -> str:
        return f"127.0.0.1:{self.proxy_port}"

    def start(self) -> None:
        config = self.workdir / "caddy.json"
        config.write_text(
            json.dumps(
                {
                    "admin": {
                        "listen": f"127.0.0.1:{self.admin_port}",
                        "config": {"persist": False},
                    },
                    "logging": {"logs": {"default": {"level": "ERROR"}}},
                }
            )
        )
        env = {
            **os.environ,
            "HOME": str(self.workdir),
            "XDG_DATA_HOME": str(self.workdir / "data"),
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
        }
        log = (self.workdir / "caddy.log").open("ab")
        self.proc = subprocess.Popen(
            ["caddy", "run", "--config", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"caddy exited: {(self.workdir / 'caddy.log').read_text()}")
            try:
                urllib.request.urlopen(f"{self.admin_url}/config/", timeout=1).close()
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise RuntimeError("caddy admin API did not answer within 15s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def config(self) -> object:
        with urllib.request.urlopen(f"{self.admin_url}/config/", timeout=5) as response:
            return json.loads(response.read() or b"null")

    def get(self, host: str, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
        """One request through the proxy with ``Host: host``, on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[Caddy]:
    """A running Caddy with an admin-only config; stopped after the test."""
    if shutil.which("caddy") is None:
        message = "caddy is not installed (apt-get install caddy)"
        if REQUIRE_DOCKER:
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path / "caddy"
    workdir.mkdir()
    server = Caddy(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
