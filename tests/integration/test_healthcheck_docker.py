"""The http health check on a real dockerd: a path with a query string is one URL.

A path such as ``/cgi-bin/healthz?a=1&b=2`` once reached the container's shell unquoted, so
``&`` sent wget to the background and the check always passed: a broken release got through
its start-first gate. These tests run the CLI against the engine and look at the containers.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

PATH = "/cgi-bin/healthz?a=1&b=2"

# busybox httpd runs /w/cgi-bin/healthz as CGI: it answers with the status in $STATUS, or
# nothing listens at all when STATUS is "down".
CGI_APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - |
      [ "$STATUS" = down ] && exec sleep 3600
      mkdir -p /w/cgi-bin
      printf '#!/bin/sh\\necho "Status: %s"\\necho\\necho hi\\n' "$STATUS" > /w/cgi-bin/healthz
      chmod +x /w/cgi-bin/healthz
      exec httpd -f -p 8080 -h /w
  env: {{STATUS: "{status}"}}
  ports: [{{name: http, containerPort: 8080}}]
  healthCheck: {{http: {{path: "{path}", port: http}}, interval: 1s, timeout: 1s, retries: 2}}
  update: {{strategy: start-first}}
  init: true
  stopGracePeriod: 1s
"""


def cgi_app(name: str, status: str) -> str:
    return CGI_APP.format(name=name, status=status, path=PATH)


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env()
    try:
        yield c
    finally:
        c.close()


def trueup(repo: Path, instance: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "controller", *args, "--repo", str(repo)]
    cmd += ["--instance", instance, "--state-dir", str(state)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def containers(
    client: docker.DockerClient, instance: str
) -> list[docker.models.containers.Container]:
    return client.containers.list(
        ignore_removed=True, all=True, filters={"label": f"trueup.instance={instance}"}
    )


def test_query_path_check_fails_when_the_server_answers_500(
    tmp_path: Path, instance: str, client: docker.DockerClient
) -> None:
    """An app whose health URL (with ``&`` in its query) answers 500 never becomes healthy:
    apply fails naming the health check and the container is not reported healthy."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": cgi_app("web", "500 Internal Server Error")})
    result = trueup(repo, instance, tmp_path / "state", "apply")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "health" in result.stdout.lower()
    for c in containers(client, instance):
        health = (c.attrs["State"].get("Health") or {}).get("Status")
        assert health != "healthy"


@pytest.mark.parametrize("broken", ["500 Internal Server Error", "down"])
def test_start_first_keeps_the_old_replica_when_the_new_one_fails_its_query_check(
    tmp_path: Path, instance: str, client: docker.DockerClient, broken: str
) -> None:
    """A healthy release (the same query URL answering 200) stays in service when the next
    release answers 500 or does not listen: the new replica is removed, the old one kept."""
    repo = tmp_path / "repo"
    state = tmp_path / "state"
    make_repo(repo, {"apps/web.yaml": cgi_app("web", "200 OK")})
    first = trueup(repo, instance, state, "apply")
    assert first.returncode == 0, first.stdout + first.stderr
    (old,) = containers(client, instance)
    assert old.attrs["State"]["Health"]["Status"] == "healthy"

    commit_files(repo, {"apps/web.yaml": cgi_app("web", broken)}, "break the release")
    second = trueup(repo, instance, state, "apply")
    assert second.returncode == 1, second.stdout + second.stderr
    left = containers(client, instance)
    assert [c.id for c in left] == [old.id]
    left[0].reload()
    assert left[0].status == "running"
    assert left[0].attrs["State"]["Health"]["Status"] == "healthy"
