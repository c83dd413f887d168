"""`trueup run` against a real dockerd keeps serving when a commit carries hostile YAML: the
hostile files are located problems, the good app still rolls, and the process never exits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, git, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

WEB = (
    "apiVersion: trueup/v1\nkind: App\nmetadata: {{name: web}}\nspec:\n  image: busybox:1.36\n"
    "  command: [sleep, '3600']\n  env: {{VERSION: '{v}'}}\n  stopGracePeriod: 1s\n"
)
BAD = "apiVersion: trueup/v1\nkind: App\nmetadata: {{name: bad}}\nspec:\n  image: x\n  user: {v}\n"


def test_hostile_yaml_never_stops_the_controller(tmp_path: Path, instance: str) -> None:
    """Commits with `!!int x`, `!!timestamp x` and a 4301-digit integer: web converges to each
    new version, the controller keeps running, and no traceback is logged."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": WEB.format(v="1"), "apps/bad.yaml": BAD.format(v="!!int x")})
    log = tmp_path / "controller.log"
    root = str(Path(__file__).resolve().parents[2])
    state = str(tmp_path / "state")
    cmd = [sys.executable, "-m", "controller", "run", "--repo", str(repo), "--instance", instance,
           "--state-dir", state, "--interval", "10m", "--listen", "off"]  # fmt: skip
    client = docker.from_env()
    with log.open("ab") as out:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=out, env={**os.environ, "PYTHONPATH": root}
        )
    try:

        def version() -> list[str]:
            label = [f"trueup.instance={instance}", "trueup.app=web"]
            rows = client.containers.list(ignore_removed=True, filters={"label": label})
            return [str(r.labels.get("trueup.revision", "")) for r in rows]

        def wait_for_revision(sha: str) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert process.poll() is None, log.read_text(errors="replace")
                if version() == [sha]:
                    return
                time.sleep(0.2)
            raise AssertionError(f"web never ran {sha}: {log.read_text(errors='replace')}")

        wait_for_revision(git(repo, "rev-parse", "HEAD"))
        for n, value in enumerate(["!!timestamp x", "1" * 4301, "!!float ''"], start=2):
            commit_files(
                repo, {"apps/web.yaml": WEB.format(v=n), "apps/bad.yaml": BAD.format(v=value)}, "v"
            )
            wait_for_revision(git(repo, "rev-parse", "HEAD"))
        assert process.poll() is None
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        process.terminate()
        process.wait(timeout=30)
        client.close()
