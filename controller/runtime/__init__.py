"""Engine adapters behind one contract (`Engine`, `Runtime`), and `connect()`, which picks and
opens one.

An engine named by the user (``--runtime-url``, the ``runtime_url`` setting, else
``DOCKER_HOST``) is the only candidate, as with the docker CLI: when it does not answer, that is
an error naming it, never a fall-back to another engine. Only when nothing is named does
`--runtime auto` look for one: the Docker socket, then Podman's rootful and rootless sockets,
taking the first that answers (logging ``runtime_selected``). An engine that names itself
Podman gets the `PodmanRuntime` quirks.
`auto` picks `SwarmRuntime` only when asked to (``swarm=True``: the ``swarm`` setting) and the
engine is a swarm manager; `--runtime swarm` always does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import structlog

from controller.errors import ConfigError, RuntimeUnavailable
from controller.labels import check_instance
from controller.runtime.base import (
    BindMount,
    BuildRequest,
    BuildResult,
    ContainerInfo,
    ContainerSpec,
    Engine,
    ExecResult,
    HealthCheckSpec,
    LogLine,
    PortSpec,
    Runtime,
    RuntimeEvent,
    Stats,
    VolumeMount,
    Workload,
    network_name,
)

log = structlog.get_logger(__name__)

DOCKER_SOCKET = "unix:///var/run/docker.sock"
PODMAN_ROOTFUL_SOCKET = "unix:///run/podman/podman.sock"
KINDS = ("auto", "docker", "podman", "swarm")


def podman_urls(env: Mapping[str, str] | None = None) -> list[str]:
    """Podman's sockets: rootful first, then rootless under ``$XDG_RUNTIME_DIR``."""
    env = os.environ if env is None else env
    urls = [PODMAN_ROOTFUL_SOCKET]
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        urls.append(f"unix://{runtime_dir}/podman/podman.sock")
    return urls


def named_engine(
    kind: str, url: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """The engine the user named for ``kind``, and where it was named; None: look for one.

    ``url`` (``--runtime-url`` / ``runtime_url``) names it for every kind; ``DOCKER_HOST``
    for every kind but ``podman`` (which, like the podman CLI, does not read it).
    """
    env = os.environ if env is None else env
    if url:
        return url, "--runtime-url/runtime_url"
    if kind != "podman" and env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"], "DOCKER_HOST"
    return None


def candidate_urls(
    kind: str, url: str | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """Where ``kind`` looks for its engine, in order; a named engine is the only candidate."""
    env = os.environ if env is None else env
    named = named_engine(kind, url, env)
    if named is not None:
        return [named[0]]
    if kind == "podman":
        return podman_urls(env)
    if kind in ("docker", "swarm"):
        return [DOCKER_SOCKET]
    return list(dict.fromkeys([DOCKER_SOCKET, *podman_urls(env)]))


def _is_swarm_manager(url: str) -> bool:
    from controller.runtime.swarm import is_swarm_manager  # the SDK: only when asked for swarm

    return is_swarm_manager(url)


def _socket_missing(url: str) -> bool:
    return url.startswith("unix://") and not os.path.exists(url.removeprefix("unix://"))


def connect(
    kind: str = "auto",
    url: str | None = None,
    *,
    instance: str,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    swarm: bool = False,
    registry: str | None = None,
) -> Engine:
    """Open the engine ``kind`` (auto, docker, podman, swarm) at ``url`` for ``instance``: a
    container `Runtime`, or a `SwarmRuntime` (`controller.targets.connect` gives the target
    that drives it).

    ``docker``, ``podman`` and ``swarm`` do no I/O here (the first call finds out whether the
    engine answers, and for swarm whether it is a manager). ``auto`` probes each candidate
    (blocking, at most 2 s each) and raises `RuntimeUnavailable` naming them all when none
    answers, or naming the one engine the user named (see `named_engine`) when that one does
    not; with ``swarm`` it picks Swarm services on a swarm manager. ``registry`` is where the
    swarm runtime pushes locally built images.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown runtime {kind!r}; expected one of {', '.join(KINDS)}")
    check_instance(instance)  # it goes into labels and engine object names
    urls = candidate_urls(kind, url, env)
    if kind == "podman":
        chosen = next((u for u in urls if not _socket_missing(u)), urls[0])
        return _open("podman", chosen, instance=instance, timeout=timeout, registry=registry)
    if kind != "auto":
        return _open(kind, urls[0], instance=instance, timeout=timeout, registry=registry)
    found = _probe_candidates(urls, swarm=swarm)
    if found is not None:
        chosen_kind, candidate = found
        return _open(chosen_kind, candidate, instance=instance, timeout=timeout, registry=registry)
    named = named_engine(kind, url, env)
    if named is not None:
        where, source = named
        why = f"no socket at {where.removeprefix('unix://')}" if _socket_missing(where) else ""
        raise RuntimeUnavailable(
            f"the container engine named by {source} ({where}) does not answer"
            f"{f' ({why})' if why else ''}; trueup uses only the named engine and looks for "
            "another only when neither --runtime-url/runtime_url nor DOCKER_HOST is set"
        )
    raise RuntimeUnavailable(f"no container engine answered at {', '.join(urls)}")


def _probe_candidates(urls: list[str], *, swarm: bool) -> tuple[str, str] | None:
    """`auto`: the kind and URL of the first candidate that answers (blocking probes)."""
    from controller.runtime.docker import probe

    for candidate in urls:
        if _socket_missing(candidate):
            continue
        engine = probe(candidate)
        if engine is None:
            continue
        is_podman = "podman" in engine.lower()
        if swarm and not is_podman and _is_swarm_manager(candidate):
            chosen = "swarm"
        else:
            chosen = "podman" if is_podman else "docker"
        log.info("runtime_selected", runtime=chosen, url=candidate, engine=engine)
        return chosen, candidate
    return None


def _open(kind: str, url: str, *, instance: str, timeout: float, registry: str | None) -> Engine:
    """The adapter of ``kind`` at ``url`` (no I/O): Swarm's holds the manager's engine."""
    from controller.runtime.docker import DockerRuntime

    if kind == "podman":
        from controller.runtime.podman import PodmanRuntime

        return PodmanRuntime(url, instance=instance, timeout=timeout)
    engine = DockerRuntime(url, instance=instance, timeout=timeout)
    if kind == "swarm":
        from controller.runtime.swarm import SwarmRuntime

        return SwarmRuntime(engine, registry=registry)
    return engine


__all__ = [
    "BindMount",
    "BuildRequest",
    "BuildResult",
    "ContainerInfo",
    "ContainerSpec",
    "Engine",
    "ExecResult",
    "HealthCheckSpec",
    "LogLine",
    "PortSpec",
    "Runtime",
    "RuntimeEvent",
    "Stats",
    "VolumeMount",
    "Workload",
    "candidate_urls",
    "connect",
    "named_engine",
    "network_name",
]
