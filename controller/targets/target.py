"""`Target`: the seam between a pass and one kind of engine.

A target knows how to observe its engine (`observe`, whose `Observation` plans against itself),
how to run a plan on it (`runner`) and how to print an app's output (`logs`); its `engine` is
the `Engine` beneath (ping, events, API call counts, the instance claim, close). The reconciler,
the loop, status and the CLI hold a `Target` and never ask which kind it is; `connect` (in
`controller.targets`) is the one place that picks one.

Targets: `containers.target.ContainerTarget` (Docker, Podman, the fake) and
`swarm.target.SwarmTarget` (services on a swarm manager).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from controller.desired.resolve import DesiredState
from controller.planning import Plan
from controller.runtime.base import Engine
from controller.targets.observed import Observation
from controller.targets.runner import PlanRunner, RunSetup


class Target(Protocol):
    """One kind of engine, for one controller instance."""

    @property
    def engine(self) -> Engine:
        """The engine beneath: ping, events, API call counts, the claim, close."""
        ...

    async def observe(self) -> Observation:
        """One look at this instance's workloads on the engine (as few calls as it allows)."""
        ...

    async def refused(self, desired: DesiredState, plan: Plan) -> dict[str, str]:
        """The apps of ``desired`` that ``plan`` would start but this engine refuses, with
        why (a ``volumeName`` volume that is not this instance's and that the host's
        ``allow_volumes`` does not match; see `controller.targets.refusals`)."""
        ...

    def runner(self, desired: DesiredState, setup: RunSetup) -> PlanRunner:
        """What runs a plan of ``desired`` on this engine (`PlanRunner.run`)."""
        ...

    def logs(
        self, app: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[str]:
        """Lines of every replica of ``app``, each prefixed with its replica (``web-0 | ...``)."""
        ...
