"""Runtime selection: candidate URLs in order, explicit kinds, and auto's probing."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from controller.errors import ConfigError, RuntimeUnavailable
from controller.runtime import candidate_urls, connect
from controller.runtime.docker import DockerRuntime
from controller.runtime.podman import PodmanRuntime
from controller.runtime.swarm import SwarmRuntime
from tests.runtime.conftest import docker_url


def test_a_named_engine_is_the_only_candidate() -> None:
    """DOCKER_HOST (like --runtime-url) is the only place auto looks, as with the docker CLI;
    only when nothing is named does it try the Docker socket, then Podman rootful and
    rootless."""
    env = {"DOCKER_HOST": "tcp://10.0.0.1:2375", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert candidate_urls("auto", env=env) == ["tcp://10.0.0.1:2375"]
    assert candidate_urls("docker", env=env) == ["tcp://10.0.0.1:2375"]
    assert candidate_urls("auto", "unix:///x.sock", env=env) == ["unix:///x.sock"]
    assert candidate_urls("auto", env={"XDG_RUNTIME_DIR": "/run/user/1000"}) == [
        "unix:///var/run/docker.sock",
        "unix:///run/podman/podman.sock",
        "unix:///run/user/1000/podman/podman.sock",
    ]
    assert candidate_urls("podman", env=env) == [
        "unix:///run/podman/podman.sock",
        "unix:///run/user/1000/podman/podman.sock",
    ]
    assert candidate_urls("docker", "unix:///x.sock", env=env) == ["unix:///x.sock"]


def test_unreachable_docker_host_never_falls_back_to_the_local_engine(
    docker_engine: None,
) -> None:
    """With DOCKER_HOST naming a socket that is not there, auto refuses, naming DOCKER_HOST
    and the socket, although the local Docker socket answers."""
    env = {"DOCKER_HOST": "unix:///nonexistent.sock"}
    with pytest.raises(RuntimeUnavailable, match=r"DOCKER_HOST \(unix:///nonexistent\.sock\)"):
        connect("auto", instance="i", env=env)
    with pytest.raises(RuntimeUnavailable, match=r"--runtime-url.*unix:///nonexistent\.sock"):
        connect("auto", "unix:///nonexistent.sock", instance="i", env={})


def test_explicit_kinds_make_their_adapter_without_io() -> None:
    """docker and podman connect lazily, so a missing engine shows up on first use."""
    rt = connect("docker", "unix:///nowhere.sock", instance="i")
    assert isinstance(rt, DockerRuntime) and rt.kind == "docker" and rt.instance == "i"
    assert isinstance(connect("podman", "unix:///nowhere.sock", instance="i"), PodmanRuntime)


def test_swarm_connects_lazily_and_unknown_kinds_are_config_errors() -> None:
    """swarm makes its adapter without I/O (manager or not shows on first use); an unknown
    kind is refused."""
    rt = connect("swarm", "unix:///nowhere.sock", instance="i", registry="reg:5000")
    assert isinstance(rt, SwarmRuntime) and rt.kind == "swarm" and rt.registry == "reg:5000"
    with pytest.raises(ConfigError):
        connect("kubernetes", instance="i")


@pytest.mark.parametrize("instance", ["x/../../..", "", "UPPER", "a_b", "-a", "a" * 33])
def test_an_invalid_instance_name_is_refused_before_any_engine_call(instance: str) -> None:
    """connect refuses an instance name that cannot be a label value and object name."""
    with pytest.raises(ConfigError, match="invalid instance name"):
        connect("docker", "unix:///nowhere.sock", instance=instance)


def test_auto_with_nothing_answering_names_the_urls(tmp_socket_dir: Path) -> None:
    """auto raises a transient error listing every place it looked."""
    url = f"unix://{tmp_socket_dir}/none.sock"
    with pytest.raises(RuntimeUnavailable, match=r"none\.sock"):
        connect("auto", url, instance="i")


def test_auto_picks_docker_and_says_so(docker_engine: None) -> None:
    """auto picks the Docker engine that answers and logs runtime_selected."""
    with capture_logs() as logs:
        rt = connect("auto", docker_url(), instance="i")
    assert type(rt) is DockerRuntime
    assert next(e for e in logs if e["event"] == "runtime_selected")["runtime"] == "docker"


def test_auto_recognises_podman(podman_url: str) -> None:
    """auto gives a Podman engine the Podman adapter, whatever socket it is on."""
    with capture_logs() as logs:
        rt = connect("auto", podman_url, instance="i")
    assert type(rt) is PodmanRuntime
    assert logs[-1]["event"] == "runtime_selected" and logs[-1]["runtime"] == "podman"
