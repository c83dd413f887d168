"""Host-level powers a manifest may ask for, and whether the controller's config allows them.

Whoever can commit to the repository is not automatically an admin of the host: privileged
mode, host networking, added capabilities, bind mounts of host paths, published host ports and
existing engine volumes that trueup did not make for this instance (``volumeName``) are refused
unless the controller's own settings allow them. Pure: ``violations`` takes values and returns
messages; ``parse_port_range`` reads ``--allow-host-port`` / ``allowed_host_ports``;
``volume_allowed`` matches a ``volumeName`` against ``allow_volumes`` (whether the volume exists
and whose it is only the engine knows: `runtime.docker_objects.ensure_volume`).
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.manifests.models import Spec


@dataclass(frozen=True)
class Policy:
    """What this controller lets manifests do on its host (all off by default)."""

    allow_privileged: bool = False
    allow_host_network: bool = False
    allowed_capabilities: frozenset[str] = frozenset()
    allowed_bind_paths: tuple[str, ...] = ()
    allowed_host_ports: tuple[tuple[int, int], ...] = ()
    """Inclusive (first, last) ranges of host ports manifests may publish (``hostPort``)."""
    allow_volumes: tuple[str, ...] = ()
    """Names or globs (``shop_*``) of existing volumes not made by this instance that a
    ``volumeName`` may mount (compose-made, another instance's, made by hand, external)."""


def parse_port_range(value: str | int) -> tuple[int, int]:
    """``8080`` or ``"8000-9000"`` as an inclusive (first, last) range; ValueError otherwise."""
    text = str(value).strip()
    first, sep, last = text.partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise ValueError(f"{text!r} is not a port or a port range (e.g. 8080, 8000-9000)") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"{text!r} is not a port range within 1-65535 (first <= last)")
    return low, high


def violations(spec: Spec, policy: Policy) -> list[str]:
    """Every power ``spec`` asks for that ``policy`` refuses, as messages naming the field."""
    problems: list[str] = []
    if spec.privileged and not policy.allow_privileged:
        problems.append("spec.privileged: privileged containers are not allowed by the controller")
    if spec.network_mode == "host" and not policy.allow_host_network:
        problems.append("spec.networkMode: host networking is not allowed by the controller")
    for cap in spec.cap_add:
        if cap not in policy.allowed_capabilities:
            problems.append(f"spec.capAdd: capability {cap} is not allowed by the controller")
    for bind in spec.binds:
        if not _allowed_path(bind.host_path, policy.allowed_bind_paths):
            problems.append(
                f"spec.binds: host path {bind.host_path} is not under an allowed bind path"
            )
    for i, port in enumerate(spec.ports):
        if port.host_port is not None and not any(
            low <= port.host_port <= high for low, high in policy.allowed_host_ports
        ):
            problems.append(
                f"spec.ports[{i}].hostPort: host port {port.host_port} is not allowed by the "
                "controller"
            )
    return problems


def volume_allowed(name: str, patterns: Sequence[str]) -> bool:
    """True when a pattern of ``patterns`` (an exact name or a glob: ``*``, ``?``, ``[...]``,
    case-sensitive, matching the whole name) matches the engine volume ``name``."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def adopted_volumes(spec: Spec, policy: Policy) -> frozenset[str]:
    """The ``volumeName`` volumes of ``spec`` that may be mounted although this instance did
    not make them (``allow_volumes``); the others only when missing (trueup creates them) or
    already this instance's."""
    return frozenset(
        v.volume_name
        for v in spec.volumes
        if v.volume_name is not None and volume_allowed(v.volume_name, policy.allow_volumes)
    )


def _allowed_path(path: str, allowed: tuple[str, ...]) -> bool:
    return allowed_root(path, allowed) is not None


def allowed_root(path: str, allowed: Sequence[str]) -> str | None:
    """The allowed bind path ``path`` is (or lies below) as written, longest first; None if
    none. The symlinks below it are resolved on the host when the container is created."""
    normal = posixpath.normpath(path)
    for root in sorted(allowed, key=len, reverse=True):
        base = posixpath.normpath(root)
        if normal == base or normal.startswith(base.rstrip("/") + "/"):
            return base
    return None
