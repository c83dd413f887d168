"""Fixtures for the git source tests: real repositories made by the git CLI, a real git daemon.

Everything here talks to real git: repositories are created and committed to with the git CLI,
and remotes are served by ``git daemon`` on loopback (git://) or by dulwich's own smart-HTTP
WSGI app (http://), both on free ports, both stopped after the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gitutil import commit_files, git, make_repo

BASE_FILES = {
    "apps/web.yaml": "kind: App\nmetadata: {name: web}\n",
    "apps/db.yml": "kind: App\nmetadata: {name: db}\n",
    "apps/README.md": "not a manifest\n",
    "services/web/Dockerfile": "FROM busybox:1.36\n",
    "services/web/www/index.html": "<h1>hi</h1>\n",
}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Remote:
    """A bare repository served over the network plus a working clone to push from."""

    url: str
    bare: Path
    work: Path

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        """Commit ``files`` in the working clone and push them; return the new sha."""
        sha = commit_files(self.work, files, message)
        git(self.work, "push", "-q", str(self.bare), "HEAD")
        return sha


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A local repository with manifests and a build context, committed on ``main``."""
    path = tmp_path / "repo"
    make_repo(path, BASE_FILES)
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Where mirrors go."""
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """The folder a git daemon serves (``--base-path``)."""
    path = tmp_path / "served"
    path.mkdir()
    return path


@pytest.fixture
def git_daemon(served: Path) -> Iterator[int]:
    """A real ``git daemon`` exporting ``served`` on a free loopback port; yields the port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            f"--base-path={served}",
            f"--port={port}",
            "--reuseaddr",
            "--listen=127.0.0.1",
            str(served),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # `git` runs git-daemon as a child: kill the whole group
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def make_remote(served: Path, work: Path, url: str, files: dict[str, str] | None = None) -> Remote:
    """Create ``work`` with ``files`` and a bare clone of it in ``served/app.git``."""
    make_repo(work, files or BASE_FILES)
    git(work, "branch", "-q", "feature")
    git(work, "tag", "v1")
    bare = served / "app.git"
    git(served, "clone", "-q", "--bare", str(work), str(bare))
    return Remote(url=url, bare=bare, work=work)


@pytest.fixture
def remote(served: Path, git_daemon: int, tmp_path: Path) -> Remote:
    """A remote with branches ``main`` (HEAD) and ``feature`` and tag ``v1``, over git://."""
    return make_remote(served, tmp_path / "work", f"git://127.0.0.1:{git_daemon}/app.git")
