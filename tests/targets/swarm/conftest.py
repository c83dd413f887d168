"""A single-node swarm on an engine of the suite's own, never on the host's engine.

`swarm_engine` is session-scoped: it starts one dockerd in a network namespace of its own
(`tests.engines.Lab`: own socket, data-root, exec-root; the host's networks, iptables and
engine are untouched), loads busybox:1.36 into it from the host's engine and inits a swarm
there. At the end of the session it stops that engine and removes everything it made, and
fails loudly if anything of it is left on the host. The set-up time is printed in the
summary. The tests reach that engine through DOCKER_HOST (the trueup subprocess) and a
low-level SDK client on its socket (the checks).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import REQUIRE_DOCKER
from tests.engines import Lab, LabError
from tests.gitutil import commit_files, git, make_repo

_TIMINGS: list[str] = []


@dataclass(frozen=True)
class SwarmEngine:
    """The swarm manager the tests talk to: its engine API URL (a unix socket)."""

    url: str

    def api(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="1.41", timeout=60)


@pytest.fixture(scope="session")
def swarm_engine(docker_engine: None) -> Iterator[SwarmEngine]:
    """A one-node swarm on a dockerd of its own, for the whole session; removed afterwards."""
    for stale in Lab.sweep_stale():
        _TIMINGS.append(f"removed a swarm engine a killed run left behind: {stale}")
    lab = Lab(nodes=1)
    try:
        lab.start()
        lab.load_image()
        manager = lab.init_swarm()
    except LabError as exc:
        lab.stop()
        message = f"no swarm engine of the tests' own: {exc}"
        if REQUIRE_DOCKER:
            pytest.fail(message)
        pytest.skip(message)
    _TIMINGS.append(f"swarm engine set up in {lab.setup_seconds():.1f}s ({lab.describe_timings()})")
    try:
        yield SwarmEngine(manager.url)
    finally:
        lab.stop()
        _TIMINGS.append(f"swarm engine torn down in {lab.timings['stop']:.1f}s")
        left = lab.leftovers()
        if left:
            pytest.fail(f"the swarm engine left things on the host: {'; '.join(left)}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _TIMINGS:
        terminalreporter.write_line(line)


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
    url: str

    @property
    def env(self) -> dict[str, str]:
        """The environment of a trueup subprocess: DOCKER_HOST is the swarm engine."""
        return {**os.environ, "DOCKER_HOST": self.url}

    def trueup(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args, "--runtime", "swarm"]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        if args[0] in ("diff", "apply"):
            cmd += ["--repo", str(self.repo), "--secrets-dir", str(self.secrets)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=self.env)
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

    def live_tasks(self, app: str) -> list[dict[str, Any]]:
        """Every task whose container runs now, whatever Swarm wants of it (an old task that
        is still shutting down counts: it still serves)."""
        rows = self.api.tasks(filters={"service": f"{self.instance}-{app}"})
        return [t for t in rows if t["Status"]["State"] in ("running", "starting")]

    def secret_names(self) -> list[str]:
        rows = self.api.secrets(filters={"label": f"trueup.instance={self.instance}"})
        return sorted(r["Spec"]["Name"] for r in rows)


@pytest.fixture
def deployment(
    swarm_engine: SwarmEngine, tmp_path: Path, instance: str
) -> Iterator[SwarmDeployment]:
    api = swarm_engine.api()
    repo = tmp_path / "repo"
    make_repo(repo, {"README.md": "deployment repo\n"})
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    try:
        yield SwarmDeployment(repo, instance, tmp_path / "state", secrets, api, swarm_engine.url)
    finally:
        try:
            remove_instance(api, instance)
        finally:
            api.close()
