"""The routes stage of one pass: keep the proxy in step with the ready replicas.

Apply calls ``RouteSync.retiring`` (the ``RoutesHook``) before it stops any container: the sync
lists the containers once, builds the table from the ready replicas minus every container
retired so far in this pass, pushes it, and waits a short drain so requests already proxied
to the leaving replica finish before it is stopped. A replica started by the pass enters the
table at the first push after it became healthy (apply only retires once the replacement is
healthy). After apply, ``finish`` pushes the full table.

A router failure never fails an app: it is recorded in ``error`` (the pass reports the routes
stage as failed, the containers still converge), later hooks of the pass skip the router,
and ``finish`` tries once more; the next pass re-asserts the whole table anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import structlog

from controller.desired.resolve import DesiredState
from controller.errors import TrueupError
from controller.routes.router import Router
from controller.routes.table import RouteEntry, RouteTable, build_table
from controller.runtime.base import Engine
from controller.targets.observed import ObservedState, observe

log = structlog.get_logger(__name__)

DRAIN_S = 0.5
"""Pause between taking a serving replica out of the proxy and stopping it."""


class RouteSync:
    """Pushes route tables for one pass; ``retiring`` is apply's ``routes_changed`` hook."""

    def __init__(
        self,
        router: Router,
        runtime: Engine,
        desired: DesiredState,
        *,
        keep: Collection[str] = (),
        current: tuple[RouteEntry, ...] = (),
        drain_s: float = DRAIN_S,
    ) -> None:
        self.router = router
        self.runtime = runtime
        self.desired = desired
        self.keep = frozenset(keep)
        self.current = current
        self.drain_s = drain_s
        self.error: str | None = None
        self.table: RouteTable | None = None
        self.pushes = 0
        self._retired: set[str] = set()
        self._lock = asyncio.Lock()

    async def retiring(self, containers: frozenset[str]) -> None:
        """Take ``containers`` out of the proxy before they are stopped; never raises."""
        self._retired |= containers
        if self.router.kind == "none" or self.error is not None:
            return
        async with self._lock:
            try:
                table, serving = await self._table(containers)
                changed = await self.router.push(table)
            except TrueupError as exc:
                self._failed(exc, stage="retire")
                return
            self.table = table
            self.pushes += int(changed)
        if changed and serving:
            log.debug("routes_drain", containers=sorted(containers), seconds=self.drain_s)
            await asyncio.sleep(self.drain_s)

    async def finish(self, observed: ObservedState | None = None) -> RouteTable | None:
        """Push the full table after apply; record (not raise) a failure.

        ``observed`` saves a list call when nothing was applied since it was taken.
        """
        async with self._lock:
            try:
                if observed is not None:
                    table = self._build(observed)
                else:
                    table, _ = await self._table(frozenset())
            except TrueupError as exc:
                self._failed(exc, stage="final")
                return self.table
            self.table = table
            try:
                self.pushes += int(await self.router.push(table))
            except TrueupError as exc:
                self._failed(exc, stage="final")
                return table
            self.error = None
            return table

    async def _table(self, leaving: frozenset[str]) -> tuple[RouteTable, bool]:
        """The table without any retired container, and whether ``leaving`` was serving."""
        containers = await self.runtime.list()
        serving = any(
            c.id in leaving and c.running and c.health in (None, "healthy") and c.ip_address
            for c in containers
        )
        return self._build(observe(containers)), serving

    def _build(self, observed: ObservedState) -> RouteTable:
        return build_table(
            self.desired, observed, current=self.current, keep=self.keep, exclude=self._retired
        )

    def _failed(self, exc: TrueupError, *, stage: str) -> None:
        self.error = str(exc)
        log.warning("routes_push_failed", router=self.router.kind, stage=stage, error=str(exc))
