"""Routes through a real Caddy reach an app that is only on a network of its own, on Docker
and on Podman: `trueup apply --router caddy` as an operator runs it, then `diff` is in sync,
and deleting the app removes its network."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, git, make_repo
from tests.routes.conftest import Caddy
from tests.runtime.conftest import cleanup, docker_url, podman_url

__all__ = ["podman_url"]  # the session's Podman service, a fixture of tests/runtime

pytestmark = pytest.mark.integration

APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 8080 -h /www
  ports: [{{name: http, containerPort: 8080}}]
  routes: [{{host: {name}.test, port: http}}]
  init: true
  stopGracePeriod: 1s
{extra}"""


@pytest.fixture(params=["docker", "podman"])
def engine(request: pytest.FixtureRequest, instance: str) -> Iterator[tuple[str, str]]:
    """(``--runtime``, its URL); what the instance left there is removed afterwards."""
    if request.param == "docker":
        request.getfixturevalue("docker_engine")
        url = docker_url()
    else:
        url = request.getfixturevalue("podman_url")
    try:
        yield request.param, url
    finally:
        cleanup(url, instance)


def test_a_route_reaches_an_app_only_on_its_own_network(
    tmp_path: Path, instance: str, caddy: Caddy, engine: tuple[str, str]
) -> None:
    """`shop` is on network `shop` only, `plain` on the instance network; both answer through
    Caddy, the next diff is in sync, and once `shop` is deleted its network is gone."""
    kind, url = engine
    repo = tmp_path / "repo"
    make_repo(repo, {"README.md": "deployment repo\n"})
    commit_files(
        repo,
        {
            "apps/shop.yaml": APP.format(name="shop", extra="  networks: [{name: shop}]\n"),
            "apps/plain.yaml": APP.format(name="plain", extra=""),
        },
        "two apps",
    )

    def trueup(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args, "--repo", str(repo)]
        cmd += ["--instance", instance, "--state-dir", str(tmp_path / "state")]
        cmd += ["--runtime", kind, "--runtime-url", url]
        cmd += ["--router", "caddy", "--caddy-admin", caddy.admin_url]
        cmd += ["--proxy-listen", caddy.proxy_listen]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    applied = trueup("apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert caddy.get("shop.test") == (200, "shop\n")
    assert caddy.get("plain.test") == (200, "plain\n")
    diff = trueup("diff")
    assert diff.returncode == 0, diff.stdout + diff.stderr

    client = docker.APIClient(base_url=url, version="1.41", timeout=30)
    try:
        network = f"trueup-{instance}-shop"
        assert [n["Name"] for n in client.networks(names=[network])] == [network]
        git(repo, "rm", "-q", "apps/shop.yaml")
        git(repo, "commit", "-q", "-m", "remove shop")
        applied = trueup("apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert caddy.get("shop.test")[0] == 404
        assert caddy.get("plain.test") == (200, "plain\n")
        assert [n["Name"] for n in client.networks(names=[network])] == []
    finally:
        client.close()
