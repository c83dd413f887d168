"""A manifest must not reach beyond its instance or the host's policy, on a real dockerd.

Each test drives the CLI as an operator would and checks the engine with the docker SDK:
host ports need ``--allow-host-port``, named volumes are the instance's own (scoped engine
names, labels checked, old-name volumes of the instance kept in use), and bind paths are
resolved on the host so a symlink cannot lead out of an allowed path.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

SLEEPER = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  init: true
  stopGracePeriod: 1s
{extra}"""


def sleeper(name: str, extra: str = "") -> str:
    return SLEEPER.format(name=name, extra="".join(f"  {line}\n" for line in extra.splitlines()))


@dataclass
class Host:
    """A deployment repository, the instance trueup manages it under, and the engine."""

    repo: Path
    instance: str
    state: Path
    client: docker.DockerClient

    def trueup(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args, "--repo", str(self.repo)]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    def commit(self, files: dict[str, str]) -> str:
        return commit_files(self.repo, files, "change")

    def containers(self, app: str) -> list[docker.models.containers.Container]:
        labels = [f"trueup.instance={self.instance}", f"trueup.app={app}"]
        return self.client.containers.list(all=True, filters={"label": labels})


@pytest.fixture
def host(tmp_path: Path, instance: str) -> Iterator[Host]:
    client = docker.from_env()
    make_repo(tmp_path / "repo", {"README.md": "deployment repo\n"})
    try:
        yield Host(tmp_path / "repo", instance, tmp_path / "state", client)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- host ports ------------------------------------------------------------------------


def test_host_port_needs_the_allowing_flag(host: Host) -> None:
    """Without ``--allow-host-port`` the app is refused naming the field and nothing is
    published; with a range that holds the port it is published on the given ``hostIp``."""
    port = free_port()
    ports = f"ports: [{{name: p, containerPort: 8080, hostPort: {port}, hostIp: 127.0.0.1}}]"
    host.commit({"apps/pub.yaml": sleeper("pub", ports)})
    refused = host.trueup("apply")
    assert refused.returncode != 0
    assert f"spec.ports[0].hostPort: host port {port} is not allowed" in refused.stdout
    assert host.containers("pub") == []
    allowed = host.trueup("apply", "--allow-host-port", f"{port - 1}-{port + 1}")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    (container,) = host.containers("pub")
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
