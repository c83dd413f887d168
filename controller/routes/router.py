"""The router contract (what the reconciler needs from a reverse proxy) and ``connect_router``.

A router holds one table per controller instance. ``current()`` reads what the proxy serves
now (``None``: this router keeps nothing to compare with); ``push()`` makes the proxy serve a
table, returning False when it already did. Both raise `RouterUnavailable` (transient) only.
``--router none`` is `NoRouter`: routes are computed and shown, never pushed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from controller.errors import ConfigError
from controller.routes.table import RouteTable

ROUTERS = ("caddy", "none")


@runtime_checkable
class Router(Protocol):
    """A reverse proxy that trueup keeps in step with the ready replicas."""

    kind: str

    async def current(self) -> RouteTable | None:
        """The table the proxy serves for this instance; None when there is nothing to read."""
        ...

    async def push(self, table: RouteTable) -> bool:
        """Make the proxy serve ``table``; False when it already did."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class NoRouter:
    """``--router none``: the table is computed and shown, never pushed anywhere."""

    kind = "none"

    async def current(self) -> RouteTable | None:
        return None

    async def push(self, table: RouteTable) -> bool:
        return False

    async def close(self) -> None:
        return None


def connect_router(
    kind: str,
    *,
    instance: str,
    admin_url: str | None = None,
    listen: str | None = None,
    https: bool = False,
) -> Router:
    """The router ``kind`` (caddy, none) for ``instance``; no I/O until the first call."""
    if kind == "none":
        return NoRouter()
    if kind == "caddy":
        from controller.routes.caddy import DEFAULT_ADMIN, DEFAULT_LISTEN, CaddyRouter

        return CaddyRouter(
            admin_url or DEFAULT_ADMIN,
            instance=instance,
            listen=listen or DEFAULT_LISTEN,
            https=https,
        )
    raise ConfigError(f"unknown router {kind!r}; expected one of {', '.join(ROUTERS)}")
