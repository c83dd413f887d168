"""The engine, seen from the benchmark: describe it, wait on it, and clean up after a scenario.

Talks to the same engine the tools under test use (``DOCKER_HOST`` or the Docker socket)
through the docker SDK's low-level client. Every removal is scoped by a label value that
names the benchmark's own trueup instance or compose project, so other containers on the
engine are never touched.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors

COMPOSE_PROJECT = "com.docker.compose.project"
TRUEUP_INSTANCE = "trueup.instance"


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def client() -> Any:
    return docker.APIClient(base_url=engine_url(), version="1.41", timeout=60)


def containers(api: Any, label: str, value: str) -> list[dict[str, Any]]:
    """Rows of every container (running or not) whose ``label`` is ``value``."""
    rows: list[dict[str, Any]] = api.containers(all=True, filters={"label": f"{label}={value}"})
    return rows


def running_count(api: Any, label: str, value: str) -> int:
    return sum(1 for row in containers(api, label, value) if row.get("State") == "running")


def remove_all(api: Any, label: str, value: str) -> int:
    """Force-remove every container and network labelled ``label=value``; returns containers."""
    rows = containers(api, label, value)

    def drop(row: dict[str, Any]) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(row["Id"], force=True, v=True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(drop, rows))
    for net in api.networks(filters={"label": f"{label}={value}"}):
        _drop_network(api, net["Id"])
    return len(rows)


def remove_network(api: Any, name: str) -> None:
    for net in api.networks(names=[name]):
        if net.get("Name") == name:
            _drop_network(api, net["Id"])


LEFTOVERS: list[str] = []
"""Networks the engine refused to remove (a stale endpoint, e.g. after another client made
the engine leave a swarm mid-removal): reused by the next round, reported in the notes."""


def _drop_network(api: Any, net_id: str) -> None:
    for attempt in range(5):
        try:
            api.remove_network(net_id)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            time.sleep(0.2 * (attempt + 1))
    LEFTOVERS.append(net_id[:12])


def wait_for(
    condition: Callable[[], bool], *, timeout: float, poll: float = 0.02, what: str = ""
) -> float:
    """Poll ``condition`` until it holds; return the time it took (raises on timeout)."""
    started = time.perf_counter()
    while True:
        if condition():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def describe(api: Any) -> dict[str, Any]:
    """The engine's name, version and resources, for the results."""
    version = api.version()
    info = api.info()
    return {
        "engine": (version.get("Components") or [{}])[0].get("Name", "Docker Engine"),
        "version": version.get("Version"),
        "api_version": version.get("ApiVersion"),
        "storage_driver": info.get("Driver"),
        "cgroup_version": info.get("CgroupVersion"),
        "engine_cpus": info.get("NCPU"),
        "engine_memory_bytes": info.get("MemTotal"),
        "containers_on_engine": info.get("Containers"),
    }


def container_start_floor(api: Any, *, label: str, value: str, repeat: int) -> list[float]:
    """The engine's own create + start time for one service's container (the floor)."""
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        created = api.create_container(
            "busybox:1.36",
            command=["httpd", "-f", "-p", "8080"],
            labels={label: value},
            host_config=api.create_host_config(init=True),
            name=f"{value}-floor-{i}",
        )
        api.start(created["Id"])
        times.append(time.perf_counter() - started)
        api.remove_container(created["Id"], force=True)
    return times
