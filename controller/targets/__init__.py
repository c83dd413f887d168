"""Targets: one per kind of engine (containers on Docker/Podman, services on a swarm), behind
the `Target` seam (`targets.target`), and `target_for`, the one place that picks one for an
engine `controller.runtime.connect` opened (`open_target` does both).

Each target observes its engine, plans against what it saw and runs plans on it; the
engine-neutral parts live beside them: `observed` (the observation), `runner` (running a plan)
and `controller.planning` (the per-app loop, field diffs, ordering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from controller.errors import ConfigError

if TYPE_CHECKING:
    from controller.runtime.base import Engine
    from controller.targets.target import Target


class EngineOptions(Protocol):
    """Which engine to drive and where it is: what `Settings` (and the CLI's engine options)
    carry for `open_target`."""

    @property
    def runtime(self) -> str: ...

    @property
    def runtime_url(self) -> str | None: ...

    @property
    def instance(self) -> str: ...

    @property
    def swarm(self) -> bool: ...

    @property
    def swarm_registry(self) -> str | None: ...


def open_target(options: EngineOptions) -> Target:
    """The target of the engine ``options`` name (see `controller.runtime.connect`)."""
    from controller.runtime import connect

    engine = connect(
        options.runtime,
        options.runtime_url,
        instance=options.instance,
        swarm=options.swarm,
        registry=options.swarm_registry,
    )
    return target_for(engine)


def target_for(engine: Engine) -> Target:
    """The target that drives ``engine``: containers on a container `Runtime`, services on a
    swarm manager's engine (whose module, and the docker SDK, load only then)."""
    from controller.runtime.base import Runtime
    from controller.targets.containers.target import ContainerTarget

    if isinstance(engine, Runtime):
        return ContainerTarget(engine)
    from controller.runtime.swarm import SwarmRuntime
    from controller.targets.swarm.target import SwarmTarget

    if isinstance(engine, SwarmRuntime):
        return SwarmTarget(engine)
    raise ConfigError(f"no target drives the {engine.kind} engine")
