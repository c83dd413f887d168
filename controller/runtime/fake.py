"""`FakeRuntime`: an honest in-memory runtime for fast, deterministic tests of the core.

Same contract and semantics as the real adapters (the shared contract suite runs against
all three): a removed container is gone, a stopped one shows ``exited``, builds produce
content-derived ids, events reach subscribers. Nothing runs, so tests drive what a process
would do: `crash` (it dies), `set_health`, `write_log`, `exec_handler`; an engine that
does not answer is `unavailable`. ``calls`` counts operations like the real adapters count
API requests.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import io
import json
import re
import tarfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from controller import labels as L
from controller.errors import (
    BuildFailed,
    ContainerNotFound,
    ImageNotFound,
    RuntimeRejected,
    RuntimeUnavailable,
)
from controller.runtime.archive import FileContent
from controller.runtime.base import (
    BuildLogSink,
    BuildRequest,
    BuildResult,
    ContainerInfo,
    ContainerSpec,
    ContainerState,
    ExecResult,
    Health,
    ImageInfo,
    LogLine,
    RuntimeEvent,
    Stats,
    network_name,
    refused_volume,
)
from controller.runtime.fake_images import FakeImages

ExecHandler = Callable[[ContainerInfo, Sequence[str]], ExecResult]
_FROM = re.compile(r"^\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_FAILING_RUN = re.compile(r"^\s*RUN\s+(false|exit\s+[1-9]\d*)\s*$", re.IGNORECASE)
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def default_exec(container: ContainerInfo, command: Sequence[str]) -> ExecResult:
    """A tiny shell: ``true``, ``false``, ``echo ...``; anything else succeeds silently."""
    if not command:
        return ExecResult(exit_code=126, output="")
    if command[0] == "false":
        return ExecResult(exit_code=1, output="")
    if command[0] == "echo":
        return ExecResult(exit_code=0, output=" ".join(command[1:]) + "\n")
    return ExecResult(exit_code=0, output="")


@dataclass
class _Container:
    id: str
    spec: ContainerSpec
    labels: dict[str, str]
    created: datetime
    ip_address: str | None
    state: ContainerState = "created"
    health: Health | None = None
    exit_code: int | None = None
    lines: list[LogLine] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def info(self) -> ContainerInfo:
        return ContainerInfo(
            id=self.id,
            name=self.spec.name,
            image=self.spec.image,
            labels=dict(self.labels),
            state=self.state,
            health=self.health if self.state == "running" else None,
            created=self.created,
            ip_address=self.ip_address,
            exit_code=self.exit_code if self.state == "exited" else None,
            status=self.state,
            addresses={n.name: self.ip_address for n in self.spec.networks if self.ip_address},
        )

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class FakeRuntime:
    """In-memory runtime for one instance; ``images`` are the images it starts with."""

    kind = "fake"

    def __init__(self, *, instance: str = "default", images: Iterable[str] = ()) -> None:
        self.instance = instance
        self.calls: Counter[str] = Counter()
        self.images: dict[str, str] = {name: _digest(name) for name in images}
        self.networks: set[str] = set()
        self.volumes: set[str] = set()
        self.foreign_volumes: set[str] = set()
        """Volumes that exist but are not this instance's (`check_volume` refuses them)."""
        self.unavailable = False
        self.registry: set[str] = set()
        """Images ``pull`` can fetch (none by default: there is no registry)."""
        self.claims: dict[str, dict[str, str]] = {}
        """Instance claims; give two fakes the same dict to model one engine."""
        self.start_health: Health = "starting"
        """Health a container with a check reports right after start; tests that want
        instant readiness set ``"healthy"``."""
        self.exec_handler: ExecHandler = default_exec
        self.signals: list[tuple[str, str]] = []
        """(container id, signal) for every ``reload_files``."""
        self._containers: dict[str, _Container] = {}
        self._events: list[RuntimeEvent] = []
        self._events_changed = asyncio.Event()
        self._ticks = 0
        self._images = FakeImages(self.images, self._now)

    @property
    def built(self) -> dict[str, ImageInfo]:
        """The images `build` made, by id, with their tags, labels and creation times."""
        return self._images.built

    # -- test controls -------------------------------------------------------------------

    def crash(self, container: str, exit_code: int = 1) -> None:
        """Make a running container's process die with ``exit_code``."""
        c = self._find(container)
        c.state, c.exit_code, c.health = "exited", exit_code, None
        self._emit("die", c, exit_code=exit_code)
        c.touch()

    def set_health(self, container: str, health: Health) -> None:
        """Report a health-check result for a running container."""
        c = self._find(container)
        c.health = health
        self._emit("health_status", c, health=health)

    def write_log(self, container: str, text: str) -> None:
        """Make a container print one line."""
        c = self._find(container)
        c.lines.append(LogLine(container=c.spec.name, text=text, time=self._now()))
        c.touch()

    # -- plumbing ------------------------------------------------------------------------

    def _enter(self, op: str) -> None:
        self.calls[op] += 1
        if self.unavailable:
            raise RuntimeUnavailable(f"{op}: engine unreachable (fake)")

    def _now(self) -> datetime:
        self._ticks += 1
        return _EPOCH + timedelta(seconds=self._ticks)

    def _find(self, ref: str) -> _Container:
        if ref in self._containers:
            return self._containers[ref]
        for c in self._containers.values():
            if c.spec.name == ref or (len(ref) >= 12 and c.id.startswith(ref)):
                return c
        raise ContainerNotFound(f"no such container: {ref}")

    def _emit(
        self,
        kind: str,
        c: _Container,
        *,
        exit_code: int | None = None,
        health: Health | None = None,
    ) -> None:
        self._events.append(
            RuntimeEvent(
                kind=kind,
                container_id=c.id,
                name=c.spec.name,
                labels=dict(c.labels),
                time=self._now(),
                exit_code=exit_code,
                health=health,
            )
        )
        self._events_changed.set()
        self._events_changed = asyncio.Event()

    # -- the contract --------------------------------------------------------------------

    async def ping(self) -> bool:
        """True unless the fake engine was made unavailable."""
        self.calls["ping"] += 1
        return not self.unavailable

    async def list(self) -> list[ContainerInfo]:
        """Every container of this instance, sorted by name."""
        self._enter("list")
        return sorted((c.info() for c in self._containers.values()), key=lambda i: i.name)

    async def build(self, request: BuildRequest, on_log: BuildLogSink | None = None) -> BuildResult:
        """Check the context like an engine would; the id is derived from its content."""
        self._enter("build")
        data = request.context if isinstance(request.context, bytes) else request.context.read()
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.extractfile(request.dockerfile)
                dockerfile = member.read().decode() if member else ""
        except (tarfile.TarError, KeyError) as exc:
            raise BuildFailed(
                f"build {request.tag}: no {request.dockerfile} in the context",
                log_tail=[str(exc)],
            ) from exc
        lines: list[str] = []
        stages: set[str] = set()
        instructions = [x for x in dockerfile.splitlines() if x.strip() and not x.startswith("#")]
        for number, instruction in enumerate(instructions, 1):
            line = f"Step {number}/{len(instructions)} : {instruction.strip()}"
            lines.append(line)
            if on_log is not None:
                on_log(line)
            base = _FROM.match(instruction)
            if base and base.group(1) not in self.images and base.group(1) not in stages:
                raise BuildFailed(
                    f"build {request.tag}: base image {base.group(1)} not found", log_tail=lines
                )
            if base and base.group(2):
                stages.add(base.group(2))
            if _FAILING_RUN.match(instruction):
                lines.append("The command returned a non-zero code: 1")
                raise BuildFailed(f"build {request.tag}: a RUN step failed", log_tail=lines)
        image_id = (
            "sha256:"
            + hashlib.sha256(
                data + json.dumps([request.dockerfile, dict(request.args), request.target]).encode()
            ).hexdigest()
        )
        self._images.record(image_id, request.tag, request.labels)
        lines.append(f"Successfully built {image_id[7:19]}")
        if on_log is not None:
            on_log(lines[-1])
        return BuildResult(image_id=image_id, tag=request.tag, log=tuple(lines))

    async def list_images(self) -> builtins.list[ImageInfo]:
        """The built images that carry this instance's label, oldest first."""
        self._enter("list_images")
        return self._images.of_instance(self.instance)

    async def remove_image(self, ref: str) -> bool:
        """Untag ``ref``; the image goes with its last tag unless a container uses it."""
        self._enter("remove_image")
        return self._images.untag(ref, {c.spec.image for c in self._containers.values()})

    async def prune_dangling_images(self) -> int:
        """Drop this instance's built images that lost every tag; their sizes."""
        self._enter("prune_images")
        return self._images.prune_dangling(self.instance)

    async def image_exists(self, image: str) -> bool:
        """True for the initial images and every image built."""
        self._enter("image_exists")
        return image in self.images

    async def pull(self, image: str) -> None:
        """Images listed in ``registry`` can be pulled; anything else is not found."""
        self._enter("pull")
        if image not in self.registry:
            raise ImageNotFound(f"cannot pull {image}: not in the (fake) registry")
        self.images[image] = _digest(image)

    async def create(self, spec: ContainerSpec) -> str:
        """Record a created container; names are unique, the image must exist."""
        self._enter("create")
        if spec.image not in self.images:
            raise ImageNotFound(f"create {spec.name}: no such image: {spec.image}")
        if any(c.spec.name == spec.name for c in self._containers.values()):
            raise RuntimeRejected(f"create {spec.name}: the name is already in use")
        managed = spec.network_mode in (None, "bridge")
        if managed and spec.networks:
            self.networks.update(n.name for n in spec.networks)
        elif managed:
            self.networks.add(spec.network or network_name(self.instance))
        self.volumes.update(v.name for v in spec.volumes)
        container_id = hashlib.sha256(f"{spec.name}/{self._ticks}".encode()).hexdigest()
        self._containers[container_id] = _Container(
            id=container_id,
            spec=spec,
            labels={**spec.labels, L.INSTANCE: self.instance},
            created=self._now(),
            ip_address=f"10.89.{len(self._containers) // 250}.{len(self._containers) % 250 + 2}"
            if managed
            else None,
        )
        return container_id

    async def start(self, container: str) -> None:
        """Mark running; a container with a health check starts as ``start_health``."""
        self._enter("start")
        c = self._find(container)
        if c.state != "running":
            c.state, c.exit_code = "running", None
            c.health = self.start_health if c.spec.healthcheck is not None else None
            c.touch()

    async def stop(
        self, container: str, *, grace_period: float | None = None, signal: str | None = None
    ) -> None:
        """Mark exited (as if killed by the signal: 128 + 15); events die, then stop."""
        self._enter("stop")
        c = self._find(container)
        if c.state == "running":
            c.state, c.exit_code, c.health = "exited", 143, None
            self._emit("die", c, exit_code=143)
            self._emit("stop", c)
            c.touch()

    async def reload_files(
        self, container: str, files: tuple[FileContent, ...], *, signal: str, name: str
    ) -> None:
        """Replace the container's files (same paths overwritten), record the signal, rename."""
        self._enter("reload_files")
        c = self._find(container)
        if c.state != "running":
            raise RuntimeRejected(f"reload {container}: the container is not running")
        kept = {f.path: f for f in c.spec.files}
        kept.update({f.path: f for f in files})
        c.spec = replace(c.spec, files=tuple(kept.values()), name=name)
        self.signals.append((c.id, signal))
        c.touch()

    async def remove(self, container: str, *, force: bool = True) -> None:
        """Forget the container; a running one needs ``force``."""
        self._enter("remove")
        c = self._find(container)
        if c.state == "running":
            if not force:
                raise RuntimeRejected(f"remove {container}: the container is running")
            c.state, c.exit_code = "exited", 137
            self._emit("die", c, exit_code=137)
        del self._containers[c.id]
        self._emit("destroy", c)
        c.touch()

    async def logs(
        self, container: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """Lines written with `write_log`; ``follow`` waits for more while it runs."""
        self._enter("logs")
        c = self._find(container)
        lines = c.lines if tail is None else c.lines[-tail:] if tail > 0 else []
        sent = len(c.lines) - len(lines)
        while True:
            while sent < len(c.lines):
                sent += 1
                yield c.lines[sent - 1]
            if not follow or c.state != "running" or c.id not in self._containers:
                return
            await c.changed.wait()

    async def inspect(self, container: str) -> ContainerInfo:
        """The container as `list` shows it."""
        self._enter("inspect")
        return self._find(container).info()

    async def stats(self, container: str) -> Stats:
        """A fixed, plausible snapshot (zeros for a stopped container)."""
        self._enter("stats")
        c = self._find(container)
        running = c.state == "running"
        return Stats(
            cpu_percent=0.0,
            memory_bytes=1 << 20 if running else 0,
            memory_limit=c.spec.memory,
            pids=1 if running else 0,
        )

    async def exec(
        self, container: str, command: Sequence[str], *, timeout: float | None = None
    ) -> ExecResult:
        """Answer through ``exec_handler``; the container must be running."""
        self._enter("exec")
        c = self._find(container)
        if c.state != "running":
            raise RuntimeRejected(f"exec {container}: the container is not running")
        return self.exec_handler(c.info(), list(command))

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Events from the moment of this call on."""
        self._enter("events")
        return self._follow_events(len(self._events))

    async def _follow_events(self, start: int) -> AsyncIterator[RuntimeEvent]:
        sent = start
        while True:
            while sent < len(self._events):
                event = self._events[sent]
                sent += 1
                yield event
            await self._events_changed.wait()

    async def ensure_network(self, name: str | None = None) -> str:
        """Record the network."""
        self._enter("ensure_network")
        net = name or network_name(self.instance)
        self.networks.add(net)
        return net

    async def prune_networks(self, keep: Collection[str]) -> builtins.list[str]:
        """Forget the app networks (``trueup-<instance>-*``) not in ``keep`` that no
        container is on."""
        self._enter("prune_networks")
        prefix = network_name(self.instance) + "-"
        used = {n.name for c in self._containers.values() for n in c.spec.networks}
        gone = sorted(
            n for n in self.networks if n.startswith(prefix) and n not in keep and n not in used
        )
        self.networks.difference_update(gone)
        return gone

    async def ensure_volume(
        self, name: str, *, legacy: str | None = None, adopt: bool = False
    ) -> str:
        """Record the volume; one of ``foreign_volumes`` is refused unless ``adopt``."""
        self._enter("ensure_volume")
        refusal = await self.check_volume(name, adopt=adopt)
        if refusal is not None:
            raise RuntimeRejected(refusal)
        self.volumes.add(name)
        return name

    async def check_volume(self, name: str, *, adopt: bool = False) -> str | None:
        """A message when ``name`` is in ``foreign_volumes`` (made by someone else) and not
        ``adopt``; None otherwise."""
        if name in self.foreign_volumes and not adopt:
            return refused_volume(name, "was not created by trueup", self.instance)
        return None

    async def claim_instance(self, holder: Mapping[str, str]) -> dict[str, str] | None:
        """Take the claim unless a holder has it (claims live in ``claims``, shareable)."""
        self._enter("claim_instance")
        current = self.claims.get(self.instance)
        if current is not None:
            return dict(current)
        self.claims[self.instance] = dict(holder)
        return None

    async def release_instance(self) -> None:
        self._enter("release_instance")
        self.claims.pop(self.instance, None)

    async def close(self) -> None:
        """Nothing to release."""

    def containers(self) -> builtins.list[ContainerInfo]:
        """A synchronous view of every container, for assertions."""
        return [c.info() for c in self._containers.values()]


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


__all__ = ["FakeRuntime", "default_exec"]
