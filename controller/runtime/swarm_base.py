"""Docker Swarm's units as trueup's own values: services, tasks, and the spec of a service.

Swarm's unit is a service (Swarm schedules and rolls its tasks), so the Swarm target does not
go through the container contract's create/start/stop: `targets.swarm.plan` compares desired
apps with `ServiceInfo` rows and `targets.swarm.apply` creates, updates and removes
`ServiceSpec`s (a `Workload` with what only a service has). The shared consumers that read
rows (status, the route table) read the swarm through `task_rows`: one `ContainerInfo` per
current task, labelled like a replica, with the service's virtual IP as its address.

Pure: no docker import, no I/O (`runtime/swarm.py` fills and consumes these).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from controller import labels as L
from controller.runtime.base import (
    ContainerInfo,
    ContainerState,
    Health,
    NetworkAttachment,
    RestartPolicy,
    Workload,
    network_name,
)

#: The label on task containers (not ``trueup.instance``: the container runtimes of the same
#: instance must never mistake Swarm's task containers for their own).
TASK_INSTANCE = "trueup.swarm.instance"

#: UpdateStatus states that mean Swarm is rolling the service forward.
ROLLING = frozenset({"updating"})
#: UpdateStatus states that mean the last rollout failed (rolled back or stopped half-way).
FAILED_ROLLOUT = frozenset({"rollback_started", "rollback_completed", "rollback_paused", "paused"})

UpdateOrder = Literal["start-first", "stop-first"]
EndpointMode = Literal["vip", "dnsrr"]


@dataclass(frozen=True)
class SecretMount:
    """A Swarm secret (content-hashed ``name``) exposed to the task as ``/run/secrets/<file>``
    (or at ``file`` itself when it is an absolute path: a ``spec.files`` entry)."""

    name: str
    file: str
    data: str | bytes = field(repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)
    mode: int = 0o444
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, kw_only=True, repr=False)
class ServiceSpec(Workload):
    """Everything needed to create or update one Swarm service of an app: the `Workload`,
    and what only a service has."""

    container_labels: Mapping[str, str]
    replicas: int
    restart_policy: RestartPolicy = "always"
    secrets: tuple[SecretMount, ...] = ()
    order: UpdateOrder = "start-first"
    monitor: float = 5.0
    """Seconds Swarm watches a new task (and the finished rollout) for failure."""
    networks: tuple[NetworkAttachment, ...] = ()
    """The app's overlay networks (``spec.networks``); empty: the instance's network."""
    endpoint_mode: EndpointMode = "vip"
    """``vip``: one virtual IP (needs IPVS on the nodes); ``dnsrr``: the tasks' addresses."""


@dataclass(frozen=True)
class ServiceInfo:
    """One service of this instance, as the one service list call reports it."""

    id: str
    name: str
    labels: Mapping[str, str]
    image: str
    replicas: int
    version: int
    update_state: str | None = None
    update_message: str = ""
    update_order: str | None = None
    vip: str | None = None
    """The service's virtual IP on the instance's overlay network (what routes can target)."""
    published: tuple[tuple[int, int], ...] = ()
    """(published port, target port) pairs of the routing mesh."""
    secrets: tuple[str, ...] = ()
    """Names of the Swarm secrets the service's spec references."""
    template_changed: bool = False
    """True when the last update changed the task template (Swarm rolls tasks for it)."""
    volumes: tuple[tuple[str, str], ...] = ()
    """(source, target) of the service's named-volume mounts."""
    template_digest: str = ""
    """Digest of the current task template; a task with the same digest runs this spec."""

    @property
    def app(self) -> str | None:
        return self.labels.get(L.APP)

    @property
    def spec_hash(self) -> str:
        return self.labels.get(L.SPEC_HASH, "")


@dataclass(frozen=True)
class TaskInfo:
    """One task (a slot's container on some node) of a service of this instance."""

    id: str
    service_id: str
    slot: int | None
    node_id: str
    state: str
    desired_state: str
    message: str
    error: str
    timestamp: datetime
    container_id: str | None = None
    exit_code: int | None = None
    template_digest: str = ""
    """Digest of the task template the task was made from (see `ServiceInfo`)."""
    addresses: Mapping[str, str] = field(default_factory=dict)
    """Network name → the task's own IP address on it (Swarm allocates one per network)."""


@dataclass(frozen=True)
class SwarmSnapshot:
    """What two engine calls say: this instance's services and their tasks."""

    services: tuple[ServiceInfo, ...]
    tasks: tuple[TaskInfo, ...]

    def tasks_of(self, service_id: str) -> list[TaskInfo]:
        return [t for t in self.tasks if t.service_id == service_id]


_PENDING = ("new", "pending", "assigned", "accepted", "preparing", "ready")
_GONE = ("failed", "rejected", "shutdown", "complete", "orphaned", "remove")


def _row_state(task: TaskInfo) -> tuple[ContainerState, Health | None]:
    """A task's state in the container vocabulary: ``starting`` is running, awaiting health."""
    if task.state == "running":
        return "running", None
    if task.state == "starting":
        return "running", "starting"
    if task.state in _PENDING:
        return "created", None
    if task.state in ("rejected", "orphaned"):
        return "dead", None
    if task.state in _GONE:
        return "exited", None
    return "unknown", None


def current_tasks(tasks: Iterable[TaskInfo]) -> list[TaskInfo]:
    """Per slot: the tasks Swarm wants running; if none of them runs yet, also the slot's
    newest failed task (so a crash loop shows as exited, not as forever starting)."""
    by_slot: dict[int | None, list[TaskInfo]] = {}
    for t in tasks:
        by_slot.setdefault(t.slot, []).append(t)
    out: list[TaskInfo] = []
    for slot in sorted(by_slot, key=lambda s: -1 if s is None else s):
        group = sorted(by_slot[slot], key=lambda t: t.timestamp)
        wanted = [t for t in group if t.desired_state in ("running", "ready", "accepted")]
        out.extend(wanted)
        if wanted and not any(t.state == "running" for t in wanted):
            failed = [t for t in group if t.state in ("failed", "rejected")]
            if failed:
                out.append(failed[-1])
    return out


def task_address(service: ServiceInfo, task: TaskInfo) -> str | None:
    """Where a route reaches ``task``: the service's virtual IP when it has one (``vip``
    mode), else (``dnsrr``) the task's own address on the instance's network, or (an app on
    networks of its own) on the first of those by name. Never the routing mesh's ``ingress``."""
    if service.vip:
        return service.vip
    instance = service.labels.get(L.INSTANCE)
    preferred = [network_name(instance)] if instance else []
    for name in (*preferred, *sorted(task.addresses)):
        if name != "ingress" and task.addresses.get(name):
            return task.addresses[name]
    return None


def task_rows(snapshot: SwarmSnapshot) -> list[ContainerInfo]:
    """The swarm as container rows: one per current task, labelled like a replica of its app
    (``trueup.replica`` is the slot), addressed by `task_address` (the service's virtual IP,
    or the task's own address for a ``dnsrr`` service)."""
    rows: list[ContainerInfo] = []
    for service in snapshot.services:
        labels = dict(service.labels)
        for task in current_tasks(snapshot.tasks_of(service.id)):
            state, health = _row_state(task)
            row_labels = dict(labels)
            if task.slot is not None:
                row_labels[L.REPLICA] = str(task.slot)
            status = task.error or task.message
            rows.append(
                ContainerInfo(
                    id=task.id,
                    name=f"{service.name}.{task.slot}.{task.id[:12]}",
                    image=service.image,
                    labels=row_labels,
                    state=state,
                    health=health,
                    created=task.timestamp,
                    ip_address=task_address(service, task),
                    exit_code=task.exit_code if state in ("exited", "dead") else None,
                    status=f"{task.state}: {status}" if status else task.state,
                )
            )
    return sorted(rows, key=lambda r: r.name)
