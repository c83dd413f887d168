"""Runtime fixtures: one `runtime` parametrised over Fake, Docker and Podman, and the engines.

Podman runs as ``podman system service`` on a temporary socket for the whole session, started
here and stopped after. Both real engines skip when unusable, unless TRUEUP_REQUIRE_DOCKER is
set (CI), which turns a missing engine into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from controller.runtime import Runtime, connect
from controller.runtime.fake import FakeRuntime
from controller.runtime.podman import PodmanRuntime
from tests.conftest import BASE_IMAGE, REQUIRE_DOCKER


def _unusable(message: str) -> None:
    if REQUIRE_DOCKER:
        pytest.fail(message)
    pytest.skip(message)


def _engine_has_base_image(url: str) -> str | None:
    client = docker.APIClient(base_url=url, version="1.41", timeout=5)
    try:
        client.ping()
        client.inspect_image(BASE_IMAGE)
    except Exception as exc:  # any failure means unusable; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def podman_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `podman system service` on a temporary socket, for this session only."""
    binary = shutil.which("podman")
    if binary is None:
        pytest.skip("podman is not installed; run scripts/ensure-podman")
    socket_path = tmp_path_factory.mktemp("podman") / "podman.sock"
    url = f"unix://{socket_path}"
    process = subprocess.Popen(
        [binary, "system", "service", "--time=0", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        reason: str | None = "did not start"
        for _ in range(100):
            if socket_path.exists():
                reason = _engine_has_base_image(url)
                if reason is None:
                    break
            time.sleep(0.1)
        if reason is not None:
            _unusable(f"podman service unusable ({reason}); run scripts/ensure-podman")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cleanup(url: str, instance: str) -> None:
    """Remove every container and network the instance left on the engine at ``url``."""
    client = docker.APIClient(base_url=url, version="1.41", timeout=30)
    try:
        label = f"trueup.instance={instance}"
        for row in client.containers(all=True, filters={"label": label}):
            client.remove_container(row["Id"], force=True, v=True)
        for net in client.networks(filters={"label": label}):
            client.remove_network(net["Id"])
    finally:
        client.close()


def docker_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@pytest.fixture(params=["fake", "docker", "podman"])
async def runtime(request: pytest.FixtureRequest, instance: str) -> AsyncIterator[Runtime]:
    """The same contract, on the in-memory fake and on both real engines."""
    async for rt in _open(request, instance):
        yield rt


@pytest.fixture(params=["docker", "podman"])
async def real_runtime(request: pytest.FixtureRequest, instance: str) -> AsyncIterator[Runtime]:
    """Behaviour only a real engine has: processes, DNS, image contents."""
    async for rt in _open(request, instance):
        yield rt


async def _open(request: pytest.FixtureRequest, instance: str) -> AsyncIterator[Runtime]:
    kind = request.param
    if kind == "fake":
        yield FakeRuntime(instance=instance, images=[BASE_IMAGE])
        return
    if kind == "docker":
        request.getfixturevalue("docker_engine")
        url = docker_url()
        rt: Runtime = connect("docker", url, instance=instance, timeout=30)
    else:
        url = request.getfixturevalue("podman_url")
        rt = PodmanRuntime(url, instance=instance, timeout=30, health_tick=0.5)
    try:
        yield rt
    finally:
        await rt.close()
        cleanup(url, instance)


@pytest.fixture
def tmp_socket_dir() -> Iterator[Path]:
    """A short directory for unix sockets (socket paths are limited to ~100 bytes)."""
    path = Path(f"/tmp/trueup-{os.getpid()}-{time.monotonic_ns()}")
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
