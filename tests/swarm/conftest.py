"""A single-node swarm on the test engine, for as short a window as possible.

`swarm` is module-scoped: when the engine is not in a swarm, it runs
`docker swarm init --advertise-addr 127.0.0.1` and `docker swarm leave --force` afterwards;
when the engine already is a swarm manager it is used as it is and never left. Leaving does not
touch bridge networks or plain containers, so other tests on the same engine are unaffected.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.gitutil import commit_files, git, make_repo


def _swarm_state(client: docker.DockerClient) -> tuple[str, bool]:
    swarm = client.info().get("Swarm") or {}
    return str(swarm.get("LocalNodeState") or "inactive"), bool(swarm.get("ControlAvailable"))


@pytest.fixture(scope="module")
def swarm(docker_engine: None) -> Iterator[None]:
    """The engine as a swarm manager; initialised (and left afterwards) only if it was not."""
    client = docker.from_env()
    try:
        state, manager = _swarm_state(client)
        initialised = False
        if state == "active" and not manager:
            pytest.skip("the engine is a swarm worker; the swarm tests need a manager")
        if state != "active":
            subprocess.run(
                ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
                check=True,
                capture_output=True,
            )
            initialised = True
        try:
            yield
        finally:
            if initialised:
                subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True)
    finally:
        client.close()


def remove_instance(client: docker.APIClient, instance: str) -> None:
    """Remove every service, secret and network an instance left behind."""
    label = f"trueup.instance={instance}"
    for service in client.services(filters={"label": label}):
        client.remove_service(service["ID"])
    for _ in range(40):  # the overlay is released once the service's tasks are gone
        networks = client.networks(filters={"label": label})
        if not networks:
            break
        for network in networks:
            with contextlib.suppress(docker.errors.APIError):
                client.remove_network(network["Id"])
        time.sleep(0.5)
    for secret in client.secrets(filters={"label": label}):
        client.remove_secret(secret["ID"])


@dataclass
class SwarmDeployment:
    """A git repo of manifests, an instance name, and the engine's low-level client."""

    repo: Path
    instance: str
    state: Path
    secrets: Path
    api: docker.APIClient

    def trueup(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args, "--runtime", "swarm"]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        if args[0] in ("diff", "apply"):
            cmd += ["--repo", str(self.repo), "--secrets-dir", str(self.secrets)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        return commit_files(self.repo, files, message)

    def remove_file(self, rel: str) -> str:
        git(self.repo, "rm", "-q", rel)
        git(self.repo, "commit", "-q", "-m", f"remove {rel}")
        return git(self.repo, "rev-parse", "HEAD")

    def service(self, app: str) -> dict[str, Any]:
        (found,) = self.api.services(filters={"name": f"{self.instance}-{app}"})
        return dict(found)

    def services(self) -> list[str]:
        rows = self.api.services(filters={"label": f"trueup.instance={self.instance}"})
        return sorted(r["Spec"]["Name"] for r in rows)

    def running_tasks(self, app: str) -> dict[int, str]:
        """Slot → task id of the tasks that run now."""
        rows = self.api.tasks(
            filters={"service": f"{self.instance}-{app}", "desired-state": "running"}
        )
        return {t["Slot"]: t["ID"] for t in rows if t["Status"]["State"] == "running"}

    def secret_names(self) -> list[str]:
        rows = self.api.secrets(filters={"label": f"trueup.instance={self.instance}"})
        return sorted(r["Spec"]["Name"] for r in rows)


@pytest.fixture
def deployment(swarm: None, tmp_path: Path, instance: str) -> Iterator[SwarmDeployment]:
    api = docker.APIClient(version="1.41")
    repo = tmp_path / "repo"
    make_repo(repo, {"README.md": "deployment repo\n"})
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    try:
        yield SwarmDeployment(repo, instance, tmp_path / "state", secrets, api)
    finally:
        try:
            remove_instance(api, instance)
        finally:
            api.close()
