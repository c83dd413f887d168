"""`trueup run --router caddy` keeps a real Caddy's routes in step with git, by itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitutil import commit_files, make_repo
from tests.integration.test_controller import wait_for
from tests.routes.conftest import Caddy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: site}}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo {body} > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
  ports: [{{name: http, containerPort: 8080}}]
  routes: [{{host: {host}, port: http}}]
  healthCheck: {{http: {{path: /, port: http}}, interval: 1s, timeout: 1s, retries: 3}}
  init: true
  stopGracePeriod: 1s
"""


def answer(caddy: Caddy, host: str) -> tuple[int, str]:
    """Caddy's answer for ``host``; (0, "") while trueup's server is not listening yet."""
    try:
        return caddy.get(host, timeout=2)
    except OSError:
        return 0, ""


def passed(log: Path, sha: str) -> bool:
    """The controller's JSON log has a pass of ``sha``."""
    lines = log.read_text(errors="replace").splitlines()
    return any('"reconcile_pass"' in line and sha in line for line in lines)


def test_run_publishes_and_moves_routes(tmp_path: Path, instance: str, caddy: Caddy) -> None:
    """The controller pushes a new app's route, then follows a commit that renames the host;
    a commit that suspends the app (and moves its host) leaves the served route alone until
    the app is resumed."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/site.yaml": APP.format(body="hello", host="site.test")})
    cmd = [sys.executable, "-m", "controller", "run", "--repo", str(repo),
           "--instance", instance, "--state-dir", str(tmp_path / "state"), "--interval", "10m",
           "--listen", "off", "--router", "caddy", "--caddy-admin", caddy.admin_url,
           "--proxy-listen", caddy.proxy_listen]  # fmt: skip
    with open(tmp_path / "run.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        wait_for(lambda: answer(caddy, "site.test") == (200, "hello\n"), 60, "the route")
        commit_files(repo, {"apps/site.yaml": APP.format(body="hello", host="www.test")}, "host")
        wait_for(lambda: answer(caddy, "www.test")[0] == 200, 30, "the new host")
        assert answer(caddy, "site.test")[0] == 404

        # suspended in the same commit that moves the host: the proxy keeps what runs
        held = APP.format(body="hello", host="new.test").replace(
            "  init: true", "  suspend: true\n  init: true"
        )
        sha = commit_files(repo, {"apps/site.yaml": held}, "suspend site, move it")
        wait_for(lambda: passed(tmp_path / "run.log", sha), 30, "the pass of the suspension")
        assert answer(caddy, "www.test") == (200, "hello\n")
        assert answer(caddy, "new.test")[0] == 404
        commit_files(repo, {"apps/site.yaml": APP.format(body="hello", host="new.test")}, "resume")
        wait_for(lambda: answer(caddy, "new.test")[0] == 200, 30, "the resumed app's host")
        assert answer(caddy, "www.test")[0] == 404
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
