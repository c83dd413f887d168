"""Bind mounts checked where the engine resolves them: on the host, symlinks followed.

The policy (`controller.desired.policy`) admits a bind by its path as written, e.g. ``/srv/data/x``
under an allowed ``/srv/data``; the engine then follows symlinks on the host, so a link
``/srv/data/x -> /etc`` (made by anyone who can write below ``/srv/data``, such as an app
that binds it read-write) would mount ``/etc``. `resolve_bind` follows the links itself, right
before the container (or service) is created, refuses a path that ends up outside the allowed
path it was admitted under, and returns the resolved path, which is what the engine is given.

Only an engine on this host (a ``unix://`` socket) can be checked this way; for any other
engine URL the controller cannot see the engine's file system, and a bind is refused. Used by
`runtime.docker` (Docker, Podman) and `runtime.swarm` (the manager's file system).
"""

from __future__ import annotations

import os
import posixpath

from controller.errors import RuntimeRejected


def resolve_bind(host_path: str, within: str, *, local: bool) -> str:
    """``host_path`` with every symlink resolved on this host; `RuntimeRejected` when the
    result is not ``within`` (or below it, after resolving ``within`` too), when ``within``
    is not a directory here, or when the engine is not ``local``."""
    if not local:
        raise RuntimeRejected(
            f"bind {host_path}: the engine is not on this host, so the symlinks of the path "
            "cannot be resolved where it mounts them; bind mounts need a local engine "
            "(unix socket)"
        )
    if not os.path.isdir(within):
        raise RuntimeRejected(
            f"bind {host_path}: the allowed path {within} is not a directory on the "
            "controller's host, so the path cannot be resolved (run trueup where the engine "
            "runs, seeing the host's paths)"
        )
    root = os.path.realpath(within)
    real = os.path.realpath(posixpath.normpath(host_path))
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise RuntimeRejected(
            f"bind {host_path}: resolves to {real} through a symlink, outside the allowed "
            f"path {within}"
        )
    return real
