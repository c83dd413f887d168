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
from controller.targets.refusals import volume_names
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
        """Apps with a ``volumeName`` that ``allow_volumes`` does not match: on a swarm every
        node's engine mounts a volume of that name that already exists there, and trueup sees
        only the manager's, so such a mount needs the host's grant (README, Named volumes)."""
        out: dict[str, str] = {}
        for name, app in sorted(desired.apps.items()):
            for volume, _ in volume_names(app):
                if volume not in app.adopt_volumes:
                    out[name] = (
                        f"volume {volume}: on a swarm trueup cannot tell whether a node "
                        "already holds a volume of that name; mounting it needs a pattern "
                        f"of the controller's allow_volumes (--allow-volume) that matches {volume}"
                    )
                    break
        return out

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
