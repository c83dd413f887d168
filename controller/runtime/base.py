"""The runtime contract: two Protocols and trueup's own value types for talking to an engine.

`Engine` is what every adapter offers (ping, the list of rows, images, logs, events, networks,
the instance claim); `Runtime` adds the container operations (create, start, stop, remove,
inspect, exec, stats, volumes) that Docker, Podman and the fake have and Swarm does not. The
targets, `observed.py` and the loop speak only these types; the adapters (`docker.py`,
`podman.py`, `swarm.py`, `fake.py`) translate them to and from an engine. Every adapter is
async; blocking engine calls run off the event loop. Errors are trueup's own (see
`controller.errors`): `RuntimeUnavailable`/`RuntimeTimeout` are transient, `ImageNotFound`,
`BuildFailed`, `ContainerNotFound` and `RuntimeRejected` are permanent.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import IO, Literal, Protocol, runtime_checkable

from controller import labels as L
from controller.noop.fingerprint import exit_code_in, health_in
from controller.runtime.archive import FileContent

RestartPolicy = Literal["always", "on-failure", "never"]

#: Container events the `events()` stream delivers (engine action names).
EVENT_KINDS = frozenset({"die", "stop", "destroy", "health_status", "oom"})


def network_name(instance: str) -> str:
    """The managed bridge network every container of ``instance`` joins."""
    return f"trueup-{instance}"


def app_network_name(instance: str, name: str) -> str:
    """The engine name of the app network ``name`` of ``instance`` (``spec.networks``)."""
    return f"trueup-{instance}-{name}"


def volume_name(instance: str, name: str) -> str:
    """The engine name of the named volume ``name`` of ``instance``: ``trueup-<instance>_<name>``.

    Instance and volume names are both ``a-z0-9-``, so the ``_`` keeps two instances from ever
    meeting on one name (``a`` + ``b-data`` and ``a-b`` + ``data`` stay apart).
    """
    return f"trueup-{instance}_{name}"


def claim_name(instance: str) -> str:
    """The engine object whose existence says a controller drives ``instance``."""
    return f"trueup-claim-{instance}"


CLAIM_LABEL_PREFIX = "trueup.claim."


@dataclass(frozen=True)
class PortSpec:
    """A container port, published on the host only when ``host_port`` is given."""

    container_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    host_port: int | None = None
    host_ip: str | None = None


@dataclass(frozen=True)
class HealthCheckSpec:
    """A health check as the engine runs it; ``test`` is Docker's form, e.g. ``["CMD", ...]``."""

    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


def refused_volume(name: str, made_by: str, instance: str) -> str:
    """Why an existing volume ``name`` that ``made_by`` describes is not mounted for
    ``instance``: the message `Runtime.check_volume` and `Runtime.ensure_volume` give."""
    return (
        f"volume {name}: exists but {made_by}, not by instance {instance}; refusing to mount "
        "it: the controller's allow_volumes (--allow-volume) has no pattern that matches "
        f"{name} (README, Named volumes)"
    )


@dataclass(frozen=True)
class VolumeMount:
    """A named volume mounted at ``mount_path``; created on demand, never deleted by trueup.

    ``name`` is the engine's name (`volume_name`). ``legacy`` is the name the same volume had
    before names were scoped to the instance (the manifest's name): while no volume ``name``
    exists, a volume ``legacy`` that carries this instance's label is kept in use. ``adopt``
    (a ``volumeName`` that the host's ``allow_volumes`` matches) also lets an existing volume
    of that name be mounted without this instance's label (made by docker compose, by another
    instance, by hand).
    """

    name: str
    mount_path: str
    read_only: bool = False
    legacy: str | None = None
    adopt: bool = field(default=False, compare=False)  # a permission, not the mount itself


@dataclass(frozen=True)
class BindMount:
    """A host path mounted into the container (policy decides which host paths are allowed).

    ``within`` is the allowed host path the bind was admitted under: the adapter resolves
    ``host_path``'s symlinks on the host and refuses the mount when it leads out of ``within``
    (`runtime.hostpaths`). None: no such check (a bind made by trueup itself).
    """

    host_path: str
    mount_path: str
    read_only: bool = False
    within: str | None = None


@dataclass(frozen=True)
class NetworkAttachment:
    """An app network (engine name, see `app_network_name`) and the DNS aliases there."""

    name: str
    aliases: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Workload:
    """What a container and a Swarm service both run: one description of a workload.

    `ContainerSpec` (one container) and `swarm_base.ServiceSpec` (one service) extend it with
    what only their engine has. ``aliases=()`` means the app name (the ``trueup.app`` label)
    is the DNS alias on the managed network.

    ``env`` may hold resolved secret values, so the repr shows its variable names only.
    """

    name: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    working_dir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortSpec, ...] = ()
    healthcheck: HealthCheckSpec | None = None
    memory: int | None = None
    cpus: float | None = None
    volumes: tuple[VolumeMount, ...] = ()
    binds: tuple[BindMount, ...] = ()
    restart_policy: RestartPolicy = "never"
    init: bool = False
    stop_signal: str | None = None
    stop_grace_period: float | None = None
    aliases: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()

    def __repr__(self) -> str:
        shown = [
            f"env=<values hidden: {', '.join(sorted(self.env))}>"
            if f.name == "env"
            else f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


@dataclass(frozen=True, kw_only=True, repr=False)
class ContainerSpec(Workload):
    """Everything needed to create one container; the adapter adds the instance label.

    ``network=None`` means the instance's managed network. ``network_mode`` "host" or "none"
    keeps the container off the managed network. ``networks`` (the app's ``spec.networks``),
    when given, replace the managed network: the container is created on the first and
    connected to the others before it starts.
    """

    network: str | None = None
    networks: tuple[NetworkAttachment, ...] = ()
    privileged: bool = False
    network_mode: str | None = None
    files: tuple[FileContent, ...] = ()
    """Put into the container after it is created, before it starts (`archive`)."""


ContainerState = Literal[
    "created", "running", "paused", "restarting", "removing", "exited", "dead", "unknown"
]
Health = Literal["healthy", "unhealthy", "starting"]


@dataclass(frozen=True)
class ContainerInfo:
    """One container as a single list call reports it (no per-container inspect)."""

    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    state: ContainerState
    health: Health | None
    created: datetime
    ip_address: str | None = None
    exit_code: int | None = None
    status: str = ""
    addresses: Mapping[str, str] = field(default_factory=dict)
    """The container's address on each network it is on, by network name."""
    restart_count: int = 0
    """How often the engine restarted it by its restart policy (an inspect says; a list call
    does not, so 0 there): a container that died and came back is running again."""
    started_at: datetime | None = None
    """When its process last started (an inspect tells; a list call does not)."""

    @property
    def app(self) -> str | None:
        """The app this container belongs to (the ``trueup.app`` label)."""
        return self.labels.get(L.APP)

    @property
    def replica(self) -> int | None:
        """The replica index (the ``trueup.replica`` label), when it is a number."""
        value = self.labels.get(L.REPLICA)
        return int(value) if value is not None and value.isdigit() else None

    @property
    def running(self) -> bool:
        """True while the container's process runs."""
        return self.state == "running"


@dataclass(frozen=True)
class BuildRequest:
    """An image build from a tar stream of the build context."""

    context: bytes | IO[bytes]
    tag: str
    dockerfile: str = "Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildResult:
    """A finished build: the image id, the tag it carries and the whole build log."""

    image_id: str
    tag: str
    log: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageInfo:
    """An image trueup built for this instance (it carries the ``trueup.image-instance`` label).

    ``tags`` are its ``name:tag`` references (none: dangling); ``size`` is its size in bytes
    as the engine reports it (shared layers counted in full)."""

    id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    created: datetime
    size: int = 0

    @property
    def app(self) -> str | None:
        """The app it was built for (the ``trueup.app`` label)."""
        return self.labels.get(L.APP)


@dataclass(frozen=True)
class LogLine:
    """One line a container printed; ``container`` is its name."""

    container: str
    text: str
    time: datetime | None = None


@dataclass(frozen=True)
class Stats:
    """A resource snapshot of one container."""

    cpu_percent: float
    memory_bytes: int
    memory_limit: int | None = None
    pids: int | None = None


@dataclass(frozen=True)
class ExecResult:
    """The outcome of a command run inside a container."""

    exit_code: int
    output: str


@dataclass(frozen=True)
class RuntimeEvent:
    """A container event of this instance: die, stop, destroy, health_status, oom."""

    kind: str
    container_id: str
    name: str
    labels: Mapping[str, str]
    time: datetime
    exit_code: int | None = None
    health: Health | None = None

    @property
    def app(self) -> str | None:
        """The app of the container the event is about."""
        return self.labels.get(L.APP)


BuildLogSink = Callable[[str], None]


@runtime_checkable
class Engine(Protocol):
    """What every engine adapter offers, whatever its unit of work (containers or services).

    ``calls`` counts engine API requests per operation (``list``, ``create``, ...); it feeds
    ``trueup_runtime_api_calls_total{op}``. The container operations are on `Runtime` only.
    """

    kind: str
    instance: str
    calls: Counter[str]

    async def ping(self) -> bool:
        """True when the engine answers; never raises."""
        ...

    async def list(self) -> list[ContainerInfo]:
        """This instance's containers (any state) as rows, with as few engine calls as the
        engine allows (one for containers)."""
        ...

    async def build(self, request: BuildRequest, on_log: BuildLogSink | None = None) -> BuildResult:
        """Build an image; each log line goes to ``on_log`` as it arrives."""
        ...

    async def image_exists(self, image: str) -> bool:
        """True when the engine has ``image`` locally."""
        ...

    async def pull(self, image: str) -> None:
        """Fetch ``image`` from its registry; ``ImageNotFound`` when no registry has it (or
        none answers)."""
        ...

    async def list_images(self) -> builtins.list[ImageInfo]:
        """The images labelled ``trueup.image-instance=<instance>`` (built by trueup for it)."""
        ...

    async def remove_image(self, ref: str) -> bool:
        """Untag ``ref`` (``name:tag``); when that was the image's last tag, the engine deletes
        it (and its untagged parents). Never forced: `RuntimeRejected` when a container (of
        anyone, in any state) uses it. True when the image itself was deleted."""
        ...

    async def prune_dangling_images(self) -> int:
        """Remove this instance's dangling (untagged, unused) images; return bytes freed."""
        ...

    def logs(
        self, container: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """Lines the container printed (stdout and stderr), the last ``tail`` first."""
        ...

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """This instance's events from now on, until the iterator is closed."""
        ...

    async def ensure_network(self, name: str | None = None) -> str:
        """Create the managed network if missing; return its name."""
        ...

    async def claim_instance(self, holder: Mapping[str, str]) -> dict[str, str] | None:
        """Take this instance's engine-wide claim, atomically; None when taken, else the
        current holder's description (two controllers must never drive one instance)."""
        ...

    async def release_instance(self) -> None:
        """Give the claim back (a missing claim is fine)."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...


@runtime_checkable
class Runtime(Engine, Protocol):
    """A container engine (Docker, Podman, the fake): the `Engine` plus container operations,
    for one controller instance."""

    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) a container on the managed network; return its id."""
        ...

    async def start(self, container: str) -> None:
        """Start a created or stopped container (by id or name)."""
        ...

    async def stop(
        self, container: str, *, grace_period: float | None = None, signal: str | None = None
    ) -> None:
        """Send ``signal`` (default: the container's stop signal), kill after the grace period."""
        ...

    async def remove(self, container: str, *, force: bool = True) -> None:
        """Remove a container (and its anonymous volumes); named volumes are kept."""
        ...

    async def inspect(self, container: str) -> ContainerInfo:
        """One container by id or name; `ContainerNotFound` when it is gone."""
        ...

    async def stats(self, container: str) -> Stats:
        """A resource snapshot of a running container."""
        ...

    async def reload_files(
        self, container: str, files: tuple[FileContent, ...], *, signal: str, name: str
    ) -> None:
        """Put ``files`` into the running ``container``, send it ``signal``, and rename it to
        ``name`` (the name carries the short spec hash it now runs: see `containers.plan`)."""
        ...

    async def exec(
        self, container: str, command: Sequence[str], *, timeout: float | None = None
    ) -> ExecResult:
        """Run ``command`` inside a running container and return its exit code and output."""
        ...

    async def ensure_volume(
        self, name: str, *, legacy: str | None = None, adopt: bool = False
    ) -> str:
        """The engine volume to mount for ``name`` (see `VolumeMount`), created with this
        instance's label when neither exists. `RuntimeRejected` when the volume there does not
        carry this instance's label (unless ``adopt``: the host's ``allow_volumes`` lets
        it be mounted): a manifest never mounts another owner's data by itself."""
        ...

    async def check_volume(self, name: str, *, adopt: bool = False) -> str | None:
        """Why `ensure_volume` would refuse the existing volume ``name`` (a message naming
        ``allow_volumes``); None when it is missing or may be mounted. Creates nothing."""
        ...

    async def prune_networks(self, keep: Collection[str]) -> list[str]:
        """Remove this instance's app networks (`app_network_name`) not in ``keep`` that no
        container is attached to; return their names. Never a network it does not own."""
        ...


def parse_health(status: str) -> Health | None:
    """Health from an engine's status text, e.g. ``Up 5 seconds (healthy)`` (read by
    `controller.noop.fingerprint`, which projects a list row the same way)."""
    return health_in(status)


def parse_exit_code(status: str) -> int | None:
    """The exit code from a status text such as ``Exited (137) 2 seconds ago``."""
    return exit_code_in(status)


def parse_state(value: str) -> ContainerState:
    """Normalise an engine's state word; anything unexpected becomes ``unknown``."""
    word = value.lower()
    if word == "stopped":  # podman's word for a container that exited
        return "exited"
    known: tuple[ContainerState, ...] = (
        "created",
        "running",
        "paused",
        "restarting",
        "removing",
        "exited",
        "dead",
    )
    for state in known:
        if word == state:
            return state
    return "unknown"
