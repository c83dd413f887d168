"""Shared fixtures: a real Docker engine (or a skip), unique instance names, git helpers.

Integration tests skip when no engine answers, unless TRUEUP_REQUIRE_DOCKER is set (CI sets
it), in which case a missing engine fails the run instead of silently skipping.

The run never inits, joins or leaves a swarm on the host's engine (that wipes the embedded DNS
of its bridge networks): `tests.engines.install_swarm_guard` makes the SDK and the ``docker``
CLI refuse it for the whole session, and the session fails if the host engine's swarm state
changed anyway. Swarm tests run on an engine of their own (tests/targets/swarm/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE_DOCKER = bool(os.environ.get("TRUEUP_REQUIRE_DOCKER"))
BASE_IMAGE = "busybox:1.36"


def _engine_reachable() -> str | None:
    """Return None when the Docker engine answers, else the reason it does not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
            client.images.get(BASE_IMAGE)
        finally:
            client.close()
    except Exception as exc:  # any failure means "no usable engine"; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    return None


_GUARD: list[tuple[Path, Callable[[], None]]] = []


def pytest_configure(config: pytest.Config) -> None:
    from tests.engines import install_swarm_guard

    shim = Path(tempfile.mkdtemp(prefix="trueup-guard-"))
    _GUARD.append((shim, install_swarm_guard(shim)))


def pytest_unconfigure(config: pytest.Config) -> None:
    while _GUARD:
        shim, undo = _GUARD.pop()
        undo()
        shutil.rmtree(shim, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _host_swarm_unchanged() -> Iterator[None]:
    """Fail the session, loudly, if the host engine's swarm state is not what it was."""
    from tests.engines import host_swarm_state

    before = host_swarm_state()
    yield
    after = host_swarm_state()
    if before is not None and after != before:
        pytest.fail(f"the host's engine went from swarm {before!r} to {after!r} during the tests")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Require a reachable Docker engine with the base image; skip (or fail in CI) otherwise."""
    reason = _engine_reachable()
    if reason is None:
        return
    message = f"no usable Docker engine ({reason}); run scripts/ensure-docker"
    if REQUIRE_DOCKER:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def instance(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique trueup instance name; every container, network and image it leaves is removed."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    if _engine_reachable() is not None:
        return
    import docker

    client = docker.from_env()
    try:
        remove_instance_objects(client, name)
    finally:
        client.close()


def remove_instance_objects(client: Any, name: str) -> None:
    """Remove every container and network labelled as trueup instance ``name``'s (a
    ``docker.DockerClient``)."""
    label = f"trueup.instance={name}"
    for c in client.containers.list(ignore_removed=True, all=True, filters={"label": label}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": label}):
        n.remove()


@pytest.fixture(autouse=True)
def _structlog_config() -> Iterator[None]:
    """Whatever a test (or code it runs in-process) configures, the next test starts clean."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
