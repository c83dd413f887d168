"""Host-level powers a manifest may ask for, and whether the controller's config allows them.

Whoever can commit to the repository is not automatically an admin of the host: privileged
mode, host networking, added capabilities and bind mounts of host paths are refused unless the
controller's own settings allow them. Pure: ``violations`` takes values and returns messages.
"""

from __future__ import annotations

import posixpath
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
    return problems


def _allowed_path(path: str, allowed: tuple[str, ...]) -> bool:
    normal = posixpath.normpath(path)
    for root in allowed:
        base = posixpath.normpath(root)
        if normal == base or normal.startswith(base.rstrip("/") + "/"):
            return True
    return False
