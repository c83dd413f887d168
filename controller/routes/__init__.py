"""Routes: the pure route table, the router contract, Caddy's admin API, the per-pass sync."""

from controller.routes.router import ROUTERS, NoRouter, Router, connect_router
from controller.routes.sync import RouteSync
from controller.routes.table import (
    RouteEntry,
    RouteTable,
    build_table,
    kept_apps,
    normalize_path,
    route_key,
)

__all__ = [
    "ROUTERS",
    "NoRouter",
    "RouteEntry",
    "RouteSync",
    "RouteTable",
    "Router",
    "build_table",
    "connect_router",
    "kept_apps",
    "normalize_path",
    "route_key",
]
