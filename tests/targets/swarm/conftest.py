"""A three-node swarm with a registry on engines of the suite's own, never on the host's.

`swarm_engine` is session-scoped: it starts a `tests.swarm_lab.SwarmLab` (three dockerd
nodes in network namespaces of their own, one manager and two workers, Debian's
docker-registry inside the manager's namespace, busybox:1.36 loaded into every engine; the
host's networks, iptables and engine are untouched). At the end of the session it stops the
lab and removes everything it made, and fails loudly if anything of it is left on the host.
The set-up time is printed in the summary. The tests reach the manager through DOCKER_HOST
(the trueup subprocess) and low-level SDK clients on the nodes' sockets (the checks).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import REQUIRE_DOCKER
from tests.engines import Lab, LabError
from tests.gitutil import commit_files, git, make_repo
from tests.swarm_lab import SwarmLab

_TIMINGS: list[str] = []


@dataclass(frozen=True)
class SwarmEngine:
    """The swarm the tests talk to: the manager's engine API URL (a unix socket), the lab."""

    url: str
    lab: SwarmLab

    def api(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="1.41", timeout=60)


@pytest.fixture(scope="session")
def swarm_engine(docker_engine: None) -> Iterator[SwarmEngine]:
    """A three-node swarm and a registry of its own, for the whole session; removed after."""
    for stale in Lab.sweep_stale():
        _TIMINGS.append(f"removed a swarm lab a killed run left behind: {stale}")
    lab = SwarmLab(nodes=3)
    try:
        lab.start()
    except LabError as exc:
        message = f"no swarm lab of the tests' own: {exc}"
        if REQUIRE_DOCKER:
            pytest.fail(message)
        pytest.skip(message)
    took, timings = lab.lab.setup_seconds(), lab.lab.describe_timings()
    _TIMINGS.append(f"swarm lab (3 nodes, registry) set up in {took:.1f}s ({timings})")
    try:
        yield SwarmEngine(lab.manager.url, lab)
    finally:
        lab.stop()
        _TIMINGS.append(f"swarm lab torn down in {lab.lab.timings['stop']:.1f}s")
        left = lab.lab.leftovers()
        if left:
            pytest.fail(f"the swarm lab left things on the host: {'; '.join(left)}")


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
    lab: SwarmLab
    extra_env: dict[str, str] = field(default_factory=dict)
    """More settings of the trueup subprocesses (``TRUEUP_ROUTER``, ...)."""

    @property
    def env(self) -> dict[str, str]:
        """The environment of a trueup subprocess: DOCKER_HOST is the swarm engine."""
        return {**os.environ, "DOCKER_HOST": self.url, **self.extra_env}

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

    def run_in_task(self, task: dict[str, Any], command: list[str]) -> tuple[int, str]:
        """Exit code and output of ``command`` in ``task``'s container, on whichever node
        runs it (through that node's engine: a manager cannot exec on a worker)."""
        node = self.lab.node_of(task["NodeID"])
        container = task["Status"]["ContainerStatus"]["ContainerID"]
        api = node.api()
        try:
            run = api.exec_create(container, command)
            output = api.exec_start(run["Id"]).decode(errors="replace")
            return api.exec_inspect(run["Id"])["ExitCode"], output
        finally:
            api.close()

    def task_nodes(self, app: str) -> set[str]:
        """Names of the lab nodes that run a task of ``app`` now."""
        rows = self.api.tasks(
            filters={"service": f"{self.instance}-{app}", "desired-state": "running"}
        )
        running = [t for t in rows if t["Status"]["State"] == "running"]
        return {self.lab.node_of(t["NodeID"]).name for t in running}

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
        yield SwarmDeployment(
            repo, instance, tmp_path / "state", secrets, api, swarm_engine.url, swarm_engine.lab
        )
    finally:
        try:
            remove_instance(api, instance)
        finally:
            api.close()
