"""The route table: which ready replicas serve which host and path prefix. Pure.

Input is the desired state (which app declares which route, on which named port) and the
observed containers (which replicas are ready, and their address on the managed network);
output is a ``RouteTable``: one ``RouteEntry`` per host + path prefix, naming its app, the
container port and the upstream addresses (``ip:port``) of the app's ready replicas. The
proxy balances round-robin over them. An entry with no upstream is still a route (the proxy
answers 503 until a replica is ready); a route that is not in the table answers 404.

Called by ``plan`` (to diff against what the proxy has) and by ``routes.sync`` (to push during
and after apply). Deterministic: entries sorted by host and path, upstreams by address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from controller.desired.resolve import DesiredState
from controller.targets.observed import ObservedApp, ObservedState, Replica


@dataclass(frozen=True, order=True)
class RouteEntry:
    """``host`` + ``path`` prefix → ``app``'s ``port`` on its ready replicas."""

    host: str
    path: str
    """A normalised prefix: ``/`` or ``/api`` (never a trailing slash)."""
    app: str
    port: int
    """The container port the route names (as the desired spec declares it)."""
    upstreams: tuple[str, ...] = ()
    """``ip:port`` of every ready replica, sorted; empty while none is ready."""

    @property
    def key(self) -> str:
        """How plans and texts name the route, e.g. ``web.example.com/``."""
        return route_key(self.host, self.path)

    @property
    def target(self) -> str:
        """What the route points at, e.g. ``web:8080``."""
        return f"{self.app}:{self.port}"


RouteTable = tuple[RouteEntry, ...]


def normalize_path(path: str) -> str:
    """The prefix a route matches: ``/api/`` and ``/api`` are the same route."""
    stripped = path.rstrip("/")
    return stripped or "/"


def route_key(host: str, path: str) -> str:
    return f"{host}{normalize_path(path)}"


class LeftAlone(Protocol):
    """A plan's ``Skip``: an app the pass leaves alone, and whether its routes stay too."""

    @property
    def app(self) -> str: ...

    @property
    def hold_routes(self) -> bool: ...


def kept_apps(desired: DesiredState, left_alone: Iterable[LeftAlone]) -> frozenset[str]:
    """Apps whose routes stay as the proxy has them, with upstreams refreshed: those whose
    containers the plan leaves running without a usable manifest (invalid, unresolvable,
    pruning off), and the suspended ones, whose newer manifest waits until they are resumed
    (``build_table`` gives them their manifest's routes while the proxy serves none of theirs:
    its table unread, or a restarted proxy)."""
    return frozenset(s.app for s in left_alone if s.app not in desired.apps or s.hold_routes)


def build_table(
    desired: DesiredState,
    observed: ObservedState,
    *,
    current: Iterable[RouteEntry] = (),
    keep: Collection[str] = (),
    exclude: Collection[str] = (),
) -> RouteTable:
    """The table for ``desired`` served by ``observed``'s ready replicas.

    ``exclude`` names containers (ids) about to be retired: they leave the table now.
    ``keep`` names apps whose entries in ``current`` are kept, in place of their manifest's
    when they have one and the proxy serves any (a restarted proxy serving nothing gets the
    manifest's back; see ``kept_apps``). A route claimed twice (validation forbids it; a
    kept route may collide) goes to the desired app.
    """
    entries: dict[tuple[str, str], RouteEntry] = {}
    current = tuple(current)
    served = {e.app for e in current}
    for name in sorted(desired.apps):
        if name in keep and name in served:  # suspended: the proxy's entries (below) stay
            continue
        want = desired.apps[name]
        have = observed.apps.get(name)
        for route in want.routes:
            path = normalize_path(route.path)
            if (route.host, path) in entries:
                continue
            entries[(route.host, path)] = RouteEntry(
                host=route.host,
                path=path,
                app=name,
                port=route.port,
                upstreams=upstreams(have, route.port_name, route.port, exclude),
            )
    for entry in sorted(current):
        if entry.app not in keep or (entry.host, entry.path) in entries:
            continue
        have = observed.apps.get(entry.app)
        entries[(entry.host, entry.path)] = RouteEntry(
            host=entry.host,
            path=entry.path,
            app=entry.app,
            port=entry.port,
            upstreams=upstreams(have, None, entry.port, exclude),
        )
    return tuple(entries[k] for k in sorted(entries))


def upstreams(
    have: ObservedApp | None, port_name: str | None, port: int, exclude: Collection[str] = ()
) -> tuple[str, ...]:
    """``ip:port`` of each ready replica of ``have`` with an address on the managed network.

    A replica created from an older spec may listen on another port: its own stored spec
    decides the port for ``port_name``, so a rollout that moves the port never routes to
    a port nobody listens on.
    """
    if have is None:
        return ()
    found: set[str] = set()
    for replica in have.replicas:
        if not replica.ready or replica.id in exclude or not replica.info.ip_address:
            continue
        found.add(f"{replica.info.ip_address}:{_replica_port(replica, port_name, port)}")
    return tuple(sorted(found, key=_address_order))


def _replica_port(replica: Replica, port_name: str | None, default: int) -> int:
    if port_name is None:
        return default
    stored = replica.stored_spec() or {}
    for item in stored.get("ports") or []:
        if isinstance(item, dict) and item.get("name") == port_name:
            value = item.get("containerPort")
            if isinstance(value, int):
                return value
    return default


def _address_order(address: str) -> tuple[int, int, str]:
    host, _, port = address.rpartition(":")
    try:
        number = int(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        number = -1
    return (number, int(port) if port.isdigit() else 0, address)
