"""RouteSync as apply's routes hook, over FakeRuntime and an in-memory router.

These check the ordering contract that the real-Caddy tests measure as zero failed requests:
every table pushed holds only ready replicas, and no container is stopped while the last
pushed table still routes to it. A router failure is recorded and never fails an app.
"""

from __future__ import annotations

from controller.desired.resolve import DesiredApp, DesiredState
from controller.errors import RouterUnavailable
from controller.routes.sync import RouteSync
from controller.routes.table import RouteTable
from controller.runtime.fake import FakeRuntime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import desired, desired_app


class MemoryRouter:
    """Holds the last table pushed; ``down`` makes every call fail like an absent Caddy."""

    kind = "memory"

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime
        self.table: RouteTable = ()
        self.pushed: list[RouteTable] = []
        self.down = False

    async def current(self) -> RouteTable | None:
        if self.down:
            raise RouterUnavailable("memory router down")
        return self.table

    async def push(self, table: RouteTable) -> bool:
        if self.down:
            raise RouterUnavailable("memory router down")
        ready = {
            f"{c.ip_address}:8080"
            for c in self.runtime.containers()
            if c.running and c.health == "healthy"
        }
        for entry in table:
            assert set(entry.upstreams) <= ready, "a replica that is not ready was routed to"
        changed = table != self.table
        self.table = table
        self.pushed.append(table)
        return changed

    async def close(self) -> None:
        return None


class StopChecked(FakeRuntime):
    """Refuses to stop a container that the router still sends traffic to."""

    router: MemoryRouter

    async def stop(
        self, container: str, *, grace_period: float | None = None, signal: str | None = None
    ) -> None:
        info = await self.inspect(container)
        routed = {u for e in self.router.table for u in e.upstreams}
        assert f"{info.ip_address}:8080" not in routed, "stopped while still routed to"
        await super().stop(container, grace_period=grace_period, signal=signal)


def web(version: str) -> DesiredApp:
    return desired_app(
        "web",
        replicas=2,
        env={"VERSION": version},
        ports=[{"name": "http", "containerPort": 8080}],
        routes=[{"host": "web.example.com", "port": "http"}],
        healthCheck={"http": {"path": "/", "port": "http"}, "interval": "1s"},
    )


async def _pass(runtime: StopChecked, state: DesiredState) -> RouteSync:
    plan = make_plan(state, observe(await runtime.list()), current_routes=runtime.router.table)
    sync = RouteSync(runtime.router, runtime, state, drain_s=0)
    applier = Applier(
        runtime,
        state,
        instance="default",
        read_context=_no_build,
        settle_s=0,
        routes_changed=sync.retiring,
    )
    outcomes = await applier.run(plan)
    assert all(o.ok for o in outcomes), outcomes
    await sync.finish()
    return sync


async def _no_build(context: str, dockerfile: str) -> bytes:
    raise AssertionError("no build expected")


def _runtime() -> StopChecked:
    runtime = StopChecked(images=["busybox:1.36"])
    runtime.start_health = "healthy"
    runtime.router = MemoryRouter(runtime)
    return runtime


async def test_rollout_switches_routes_before_each_stop() -> None:
    """A start-first update pushes once per retired replica, each table only ready replicas,
    and never stops a replica still in the pushed table; the end table is the new replicas."""
    runtime = _runtime()
    await _pass(runtime, desired(web("v1")))
    first = {u for e in runtime.router.table for u in e.upstreams}
    assert len(first) == 2
    sync = await _pass(runtime, desired(web("v2")))
    assert sync.error is None and sync.pushes == 2
    (entry,) = runtime.router.table
    now = {f"{c.ip_address}:8080" for c in runtime.containers()}
    assert set(entry.upstreams) == now and not now & first


async def test_router_down_is_recorded_and_retried_at_the_end() -> None:
    """With the router down the hooks record the error and apply still succeeds; when the
    router is back for the final push, the error clears and the full table is there."""
    runtime = _runtime()
    await _pass(runtime, desired(web("v1")))
    runtime.router.down = True
    state = desired(web("v2"))
    sync = RouteSync(runtime.router, runtime, state, drain_s=0)
    await sync.retiring(frozenset({runtime.containers()[0].id}))
    assert sync.error == "memory router down"
    runtime.router.down = False
    await sync.finish()
    assert sync.error is None
    assert len(runtime.router.table[0].upstreams) == 1  # the retired one stays out
