"""The suite's guard for the host's engine: no swarm init, join or leave aimed at it.

Every refusal here is checked against a socket nobody listens on (made "the host's" through
DOCKER_HOST), so a broken guard fails the test with a connection error and never touches a
real engine.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docker
import docker.api.swarm
import pytest

from tests.engines import HostSwarmRefused, install_swarm_guard, protected_sockets


def test_the_session_runs_with_the_guard_installed() -> None:
    """Every test sees the guarded SDK methods and the guarding `docker` CLI first on PATH."""
    mixin = docker.api.swarm.SwarmApiMixin
    for name in ("init_swarm", "join_swarm", "leave_swarm"):
        assert getattr(mixin, name).__name__ == "refuse_on_host"
    docker_cli = shutil.which("docker")
    assert docker_cli is not None
    assert "tests/engines.py" in Path(docker_cli).read_text()
    assert {"/var/run/docker.sock", "/run/docker.sock"} <= protected_sockets()


def test_sdk_swarm_calls_on_the_host_engine_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init_swarm, join_swarm and leave_swarm on the host engine's socket raise at once."""
    dead = tmp_path / "host.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    undo = install_swarm_guard(tmp_path / "shim")
    try:
        api = docker.APIClient(base_url=f"unix://{dead}", version="1.41", timeout=2)
        with pytest.raises(HostSwarmRefused, match="init_swarm on the host's engine"):
            api.init_swarm(advertise_addr="127.0.0.1")
        with pytest.raises(HostSwarmRefused):
            api.join_swarm(["127.0.0.1:2377"], "token")
        with pytest.raises(HostSwarmRefused):
            api.leave_swarm(force=True)
        other = docker.APIClient(base_url=f"unix://{tmp_path}/lab.sock", version="1.41", timeout=2)
        with pytest.raises(Exception, match="No such file") as other_engine:
            other.leave_swarm(force=True)  # another engine: passed through (nobody answers)
        assert not isinstance(other_engine.value, HostSwarmRefused)
    finally:
        undo()


def test_cli_swarm_commands_on_the_host_engine_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker swarm init|join|leave` aimed at the host engine exit 97 with a loud message;
    other commands and other engines reach the real CLI."""
    dead = tmp_path / "host.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    undo = install_swarm_guard(tmp_path / "shim")
    try:
        shim = str(tmp_path / "shim" / "docker")
        for args in (
            ["swarm", "init", "--advertise-addr", "127.0.0.1"],
            ["--log-level", "error", "swarm", "leave", "--force"],
            ["-H", f"unix://{dead}", "swarm", "join", "--token", "t", "127.0.0.1:2377"],
        ):
            refused = subprocess.run([shim, *args], capture_output=True, text=True, timeout=30)
            assert refused.returncode == 97, args
            assert "REFUSED by the test suite: docker swarm" in refused.stderr
        lab = ["-H", f"unix://{tmp_path}/lab.sock", "swarm", "leave", "--force"]
        passed = subprocess.run([shim, *lab], capture_output=True, text=True, timeout=30)
        assert passed.returncode not in (0, 97) and "REFUSED" not in passed.stderr
        version = subprocess.run(
            [shim, "--version"], capture_output=True, text=True, timeout=30, check=True
        )
        assert "Docker version" in version.stdout
    finally:
        undo()
