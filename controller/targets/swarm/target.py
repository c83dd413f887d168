"""`SwarmTarget`: the `Target` of a swarm manager, whose unit is a service.

Observed with two calls (services, tasks: `SwarmRuntime.snapshot`); planned by `swarm.plan`
against the services, with the task rows for routes and status and Swarm's rollout state for
health; applied by `swarm.apply`; its logs are the service logs, prefixed with each task's slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from controller.desired.resolve import DesiredState
from controller.planning import Plan
from controller.runtime.swarm import SwarmRuntime
from controller.targets.refusals import changed_apps, refused_volumes
from controller.targets.runner import RunSetup
from controller.targets.swarm.apply import SwarmApplier
from controller.targets.swarm.plan import ServiceObservation, observation


class SwarmTarget:
    """Services of one instance on one swarm."""

    def __init__(self, runtime: SwarmRuntime) -> None:
        self.engine = runtime

    async def observe(self) -> ServiceObservation:
        """The instance's services and their tasks (two engine calls)."""
        snapshot = await self.engine.snapshot()
        return observation(snapshot, instance=self.engine.instance)

    async def refused(self, desired: DesiredState, plan: Plan) -> dict[str, str]:
        """Apps ``plan`` changes whose ``volumeName`` volume exists on the manager, is not
        this instance's and is not matched by ``allow_volumes``. Only the manager's volumes
        can be seen (README, "Named volumes")."""
        return await refused_volumes(desired, changed_apps(plan), self.engine.check_volume)

    def runner(self, desired: DesiredState, setup: RunSetup) -> SwarmApplier:
        """``setup.routes_changed`` hears of every change of an app's running tasks during a
        rollout (routes to a ``dnsrr`` service name its tasks)."""
        return SwarmApplier(
            self.engine,
            desired,
            instance=self.engine.instance,
            read_context=setup.read_context,
            concurrency=setup.concurrency,
            bind_paths=setup.bind_paths,
            routes_changed=setup.routes_changed,
        )

    async def logs(
        self, app: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[str]:
        """The service's output, each line prefixed with its task's slot (``web-1 | ...``)."""
        async for line in self.engine.service_logs(app, follow=follow, tail=tail):
            yield f"{line.container} | {line.text}"
