"""Observed state: what a target saw of its engine, grouped by app and replica via our labels.

`Observation` is one look at a target's engine (rows, per-app rollout notes); each target
extends it with what only it needs to plan (`plan`). `observe` groups rows (containers, or one
per current task) into an `ObservedState`, which routes, status and the container plan read.

Pure: takes ``ContainerInfo`` rows and returns values. A container without a parsable replica
label still belongs to its app (it will be replaced); one of another instance never arrives here
(the list call filters by ``trueup.instance``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from controller import labels as L
from controller.runtime.base import ContainerInfo

if TYPE_CHECKING:
    from controller.desired.resolve import DesiredState
    from controller.planning import Plan, PlanOptions


@dataclass(frozen=True)
class Replica:
    """One managed container, as its labels and the list row describe it."""

    info: ContainerInfo
    index: int | None
    spec_hash: str
    revision: str

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def running(self) -> bool:
        return self.info.state == "running"

    @property
    def ready(self) -> bool:
        """Running and not known to be unhealthy or still starting its checks."""
        return self.running and self.info.health in (None, "healthy")

    def stored_spec(self) -> dict[str, Any] | None:
        """The resolved spec this container was created from (``trueup.spec``), if readable."""
        raw = self.info.labels.get(L.SPEC)
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class ObservedApp:
    """Every container of one app."""

    name: str
    replicas: list[Replica] = field(default_factory=list)

    @property
    def ready(self) -> int:
        return sum(1 for r in self.replicas if r.ready)

    @property
    def revisions(self) -> set[str]:
        return {r.revision for r in self.replicas}


@dataclass
class ObservedState:
    """Every app of this instance that has at least one container."""

    apps: dict[str, ObservedApp] = field(default_factory=dict)


def observe(containers: Iterable[ContainerInfo]) -> ObservedState:
    """Group the list call's rows by app; rows are ordered by app, replica, creation time."""
    state = ObservedState()
    rows = sorted(containers, key=lambda c: (c.app or "", c.replica or 0, c.created, c.name))
    for info in rows:
        app = info.app
        if not app:
            continue
        replica = Replica(
            info=info,
            index=info.replica,
            spec_hash=info.labels.get(L.SPEC_HASH, ""),
            revision=info.labels.get(L.REVISION, ""),
        )
        state.apps.setdefault(app, ObservedApp(app)).replicas.append(replica)
    return state


@dataclass(frozen=True)
class Rollout:
    """What an engine that rolls updates itself says about an app beyond its rows: the last
    rollout ``failed`` (the app is Degraded), or it is still rolling (Progressing while the
    rows alone look Healthy). ``message`` leads the app's status message."""

    failed: bool
    message: str


@dataclass(frozen=True, eq=False)
class Observation(ABC):
    """One look at a target's engine: its rows (containers, or one per current task) and what
    the engine says of each app's rollout (``rollouts``, by app). A target's own observation
    plans against itself: `plan` is where an engine's way of diffing an app comes in."""

    rows: tuple[ContainerInfo, ...]
    rollouts: Mapping[str, Rollout] = field(default_factory=dict)

    @cached_property
    def state(self) -> ObservedState:
        """The rows grouped by app and replica."""
        return observe(self.rows)

    @abstractmethod
    def plan(self, desired: DesiredState, options: PlanOptions) -> Plan:
        """What must change for this engine to run ``desired`` (see `controller.planning`)."""
