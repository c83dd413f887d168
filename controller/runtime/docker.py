"""`DockerRuntime`: the runtime contract on the Docker Engine API.

Every call that is one request and one answer (list, inspect, image lookups, ping, stats, and
the writes: networks, volumes, create, start, stop, kill, wait, remove) is one
`Transport.call` with its body and parameters built by `docker_requests`; what the engine
answers is read by `docker_answers`. On a ``unix://`` engine the transport speaks HTTP itself
and the docker SDK (and requests) is never imported, so a one-shot ``trueup apply`` that
creates, replaces or removes containers does not pay their start-up time; on a ``tcp://``
engine it sends the same requests through the SDK client's session.

What streams or is multiplexed (logs, events, builds, pulls, exec) uses the SDK's low-level
`APIClient`, imported on the first such call; streams are pumped from a thread into the event
loop (`Transport.pump`). Blocking calls run in threads under a deadline (`Transport.run`),
every docker, requests or HTTP error translated into trueup's own errors with the cause kept.
Only ``runtime/`` imports `docker`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, NotRequired, Required, TypedDict, Unpack

import structlog

from controller.errors import (
    ContainerNotFound,
    ImageNotFound,
    TrueupError,
)
from controller.noop.fingerprint import all_running, list_fingerprint
from controller.runtime import docker_images as images
from controller.runtime import docker_objects as objects
from controller.runtime import docker_requests as req
from controller.runtime import docker_streams as streams
from controller.runtime.archive import FileContent, tar_files
from controller.runtime.base import (
    BindMount,
    BuildLogSink,
    BuildRequest,
    BuildResult,
    ContainerInfo,
    ContainerSpec,
    ExecResult,
    ImageInfo,
    LogLine,
    RuntimeEvent,
    Stats,
    claim_name,
    network_name,
)
from controller.runtime.docker_answers import (
    container_from_inspect,
    container_from_row,
    parse_time,
    stats_from,
)
from controller.runtime.docker_requests import split_image
from controller.runtime.hostpaths import resolve_bind
from controller.runtime.transport import (
    API_VERSION,
    EngineHTTPError,
    Transport,
    get,
    get_json,
    socket_path,
)

log = structlog.get_logger(__name__)

__all__ = ["API_VERSION", "DockerRuntime", "EngineOptions", "parse_time", "probe", "split_image"]


class EngineOptions(TypedDict):
    """What every adapter on a Docker-compatible engine is constructed with, beside its URL."""

    instance: Required[str]
    timeout: NotRequired[float]
    """Seconds each request that is not a stream or a build may take (default 30)."""
    build_timeout: NotRequired[float]
    """Seconds a build may take (default 900)."""


class ListSeen(NamedTuple):
    """One list answer the adapter turned into containers (what the no-op stamp records):
    its query, its fingerprint (`controller.noop.fingerprint`), and whether every container
    in it was running and not starting."""

    query: Mapping[str, str]
    fingerprint: str
    all_running: bool


def _seen(query: Mapping[str, str], rows: Sequence[Mapping[str, Any]]) -> ListSeen:
    """What the planner saw of a list answer; a row the projection cannot read gives an
    empty fingerprint (no stamp), never a failed pass."""
    try:
        return ListSeen(query, list_fingerprint(rows), all_running(rows))
    except Exception:  # the stamp is an optimisation: its failure must not fail the pass
        return ListSeen(query, "", False)


class DockerRuntime:
    """The runtime contract on a Docker-compatible engine at ``url`` (``unix://``, ``tcp://``).

    Construction does no I/O. ``timeout`` bounds every request except streams and builds
    (``build_timeout``). ``calls`` counts HTTP requests per operation.
    """

    kind = "docker"

    def __init__(self, url: str, **options: Unpack[EngineOptions]) -> None:
        self.url = url
        self.instance = options["instance"]
        self.build_timeout = options.get("build_timeout", 900.0)
        self._transport = Transport(url, timeout=options.get("timeout", 30.0))
        self.calls = self._transport.calls
        self._socket = self._transport.socket
        # the transport's operations, by the names the adapters built on this one call them
        self._call = self._transport.call
        self._run = self._transport.run
        self._pump = self._transport.pump
        self._streams = self._transport.streams
        self._networks: set[str] = set()
        self._network_lock = asyncio.Lock()
        self.listed: builtins.list[ListSeen] | None = None
        """Each container list this adapter answered, as the no-op stamp records it; None
        (nothing kept, no fingerprint computed) unless a one-shot `apply`'s recording set it
        to a list: a long-running controller lists every pass and must neither pay for the
        fingerprint nor keep the answers."""

    @property
    def timeout(self) -> float:
        """Seconds each request that is not a stream or a build may take."""
        return self._transport.timeout

    @property
    def _client(self) -> Any:
        """The SDK's low-level client with the request deadline (made on first use)."""
        return self._transport.client

    def _ulimits(self) -> list[dict[str, Any]] | None:
        """Ulimits every container gets, as ``{"Name", "Soft", "Hard"}``; Docker's defaults do."""
        return None

    def _image_name(self, name: str) -> str:
        """The image name as trueup writes it (engines may qualify it)."""
        return name

    def _info(self, info: ContainerInfo) -> ContainerInfo:
        """A container read from the engine, its image named as trueup wrote it."""
        image = self._image_name(info.image)
        return info if image == info.image else replace(info, image=image)

    # -- the contract --------------------------------------------------------------------

    async def ping(self) -> bool:
        """True when the engine answers within a few seconds; never raises."""
        limit = min(self.timeout, 5.0)
        try:
            await self._run("ping", self._call, "GET", "/_ping", timeout=limit, deadline=limit)
        except TrueupError:
            return False
        return True

    async def list(self) -> list[ContainerInfo]:
        """Every container of this instance, from ONE list request (no inspect)."""
        query = req.label_filter(self.instance)
        rows: list[dict[str, Any]] = await self._run(
            "list", self._call, "GET", "/containers/json", query=query
        )
        infos = [self._info(container_from_row(row, self.instance)) for row in rows]
        if self.listed is not None:  # for the no-op stamp (controller.noop)
            self.listed.append(_seen(query, rows))
        return sorted(infos, key=lambda c: c.name)

    async def inspect(self, container: str) -> ContainerInfo:
        """One container by id or name (a single inspect request)."""
        data: dict[str, Any] = await self._run(
            "inspect", self._call, "GET", "/containers/{}/json", container, subject=container
        )
        return self._info(container_from_inspect(data, self.instance))

    async def image_exists(self, image: str) -> bool:
        """True when ``image`` is on the engine (one inspect request)."""
        try:
            await self._run(
                "image_exists", self._call, "GET", "/images/{}/json", image, subject=image
            )
        except (ImageNotFound, ContainerNotFound):
            return False
        return True

    async def list_images(self) -> builtins.list[ImageInfo]:
        """The images built for this instance (its label), from one list request."""
        return await self._run(
            "list_images", images.list_images, self._transport, self.instance, self._image_name
        )

    async def remove_image(self, ref: str) -> bool:
        """Untag ``ref``, deleting the image with its last tag; a used one is refused (409)."""
        return await self._run(
            "remove_image", images.remove_image, self._transport, ref, subject=ref
        )

    async def prune_dangling_images(self) -> int:
        """Prune this instance's dangling images; the bytes reclaimed."""
        return await self._run(
            "prune_images", images.prune_dangling, self._transport, self.instance
        )

    async def pull(self, image: str) -> None:
        """Pull ``image`` (``name:tag``, ``:latest`` when no tag) from its registry."""
        await self._run("pull", streams.pull, self._transport, image, subject=image)

    async def build(self, request: BuildRequest, on_log: BuildLogSink | None = None) -> BuildResult:
        """Build from a tar stream; lines reach ``on_log`` as the engine prints them."""
        loop = asyncio.get_running_loop()
        client = self._streams()

        def emit(line: str) -> None:
            if on_log is not None:
                loop.call_soon_threadsafe(on_log, line)

        started = time.monotonic()
        result = await self._run(
            "build",
            streams.build,
            client,
            request,
            emit,
            subject=request.tag,
            deadline=self.build_timeout,
        )
        log.info(
            "image_built",
            tag=request.tag,
            image_id=result.image_id,
            seconds=round(time.monotonic() - started, 3),
        )
        return result

    async def ensure_network(self, name: str | None = None) -> str:
        """Create the managed bridge network when missing (cached once seen)."""
        net = name or network_name(self.instance)
        if net not in self._networks:
            ensure = objects.ensure_network
            await self._run(
                "ensure_network", ensure, self._transport, net, instance=self.instance, subject=net
            )
            self._networks.add(net)
        return net

    async def claim_instance(self, holder: Mapping[str, str]) -> dict[str, str] | None:
        """The claim is an internal network named ``trueup-claim-<instance>`` labelled with
        the holder; the engine refuses a second network of that name (409), atomically."""
        subject = claim_name(self.instance)
        return await self._run(
            "claim_instance", objects.claim, self._transport, self.instance, holder, subject=subject
        )

    async def release_instance(self) -> None:
        subject = claim_name(self.instance)
        await self._run(
            "release_instance", objects.release, self._transport, self.instance, subject=subject
        )

    async def ensure_volume(
        self, name: str, *, legacy: str | None = None, adopt: bool = False
    ) -> str:
        """The volume to mount for ``name`` (`docker_objects.ensure_volume`: this instance's,
        created when missing, another one mounted only with ``adopt``, else
        refused). Trueup never deletes volumes."""
        return await self._run(
            "ensure_volume",
            objects.ensure_volume,
            self._transport,
            name,
            legacy=legacy,
            adopt=adopt,
            instance=self.instance,
            subject=name,
        )

    async def check_volume(self, name: str, *, adopt: bool = False) -> str | None:
        """`docker_objects.check_volume`: why the existing ``name`` would be refused."""
        return await self._run(
            "check_volume",
            objects.check_volume,
            self._transport,
            name,
            instance=self.instance,
            adopt=adopt,
            subject=name,
        )

    async def create(self, spec: ContainerSpec) -> str:
        """Create a container from ``spec`` on the managed network (or on its app networks:
        created on the first, connected to the others before it starts); returns its id."""
        network = req.managed_network(spec, self.instance)
        if spec.networks:
            for attachment in spec.networks:
                await self._ensure_app_network(attachment.name)
        elif network is not None:
            await self.ensure_network(network)
        binds = tuple(self._resolved_bind(b) for b in spec.binds)
        volumes = [
            replace(v, name=await self.ensure_volume(v.name, legacy=v.legacy, adopt=v.adopt))
            for v in spec.volumes
        ]
        body = self._create_body(replace(spec, volumes=tuple(volumes), binds=binds))
        created: dict[str, Any] = await self._run(
            "create",
            self._call,
            "POST",
            "/containers/create",
            query={"name": spec.name},
            body=body,
            subject=spec.name,
        )
        container_id = str(created["Id"])
        log.info("container_created", container=spec.name, id=container_id[:12], image=spec.image)
        try:
            attach = objects.connect_all
            await self._run("connect_network", attach, self._transport, container_id, spec.networks)
        except TrueupError:
            await self.remove(container_id, force=True)  # never a replica on half its networks
            raise
        if spec.files:
            try:
                await self.put_files(container_id, spec.files)
            except BaseException:
                with contextlib.suppress(TrueupError):  # never leave a container without its files
                    await self.remove(container_id)
                raise
        return container_id

    async def put_files(self, container: str, files: tuple[FileContent, ...]) -> None:
        """Upload ``files`` into ``container`` (created or running) through the engine's
        archive endpoint: no host path, so a remote engine works the same."""
        await self._run(
            "put_files",
            self._call,
            "PUT",
            "/containers/{}/archive",
            container,
            query={"path": "/"},
            tar=tar_files(files),
            subject=container,
        )
        log.info("container_files_put", container=container[:12], files=len(files))

    async def _ensure_app_network(self, name: str) -> None:
        """Create the app network ``name`` when missing (a foreign one of that name is
        refused). Looked up on every create, never cached: one removed behind trueup's back
        is made again by the next create."""
        async with self._network_lock:  # one look-and-create at a time: the engine takes twins
            label = name.removeprefix(f"trueup-{self.instance}-")
            args = (self._transport, name, self.instance, label)
            await self._run("ensure_network", objects.ensure_app_network, *args, subject=name)

    async def prune_networks(self, keep: Collection[str]) -> builtins.list[str]:
        """Remove the instance's unused app networks (`docker_objects.prune_networks`)."""
        prune = objects.prune_networks
        removed: builtins.list[str] = await self._run(
            "prune_networks", prune, self._transport, self.instance, frozenset(keep)
        )
        return removed

    def _resolved_bind(self, bind: BindMount) -> BindMount:
        """``bind`` with its host path's symlinks resolved on this host (`hostpaths`)."""
        if bind.within is None:
            return bind
        real = resolve_bind(bind.host_path, bind.within, local=self._socket is not None)
        return replace(bind, host_path=real)

    def _create_body(self, spec: ContainerSpec) -> dict[str, Any]:
        """The ``POST /containers/create`` body for ``spec`` (`docker_requests.create_body`)."""
        return req.create_body(spec, instance=self.instance, ulimits=self._ulimits())

    async def start(self, container: str) -> None:
        """Start a created or stopped container (an already running one is fine: 304)."""
        await self._run(
            "start", self._call, "POST", "/containers/{}/start", container, subject=container
        )

    async def stop(
        self, container: str, *, grace_period: float | None = None, signal: str | None = None
    ) -> None:
        """Stop gracefully: ``signal`` (or the container's stop signal), SIGKILL after grace."""
        grace = None if grace_period is None else max(0, math.ceil(grace_period))
        deadline = self.timeout + (grace if grace is not None else 30)

        def run() -> None:
            if signal is None:
                # the engine signals, waits ``t`` seconds (its StopTimeout when unset, 10 by
                # default), kills, then answers: 204 stopped, 304 was not running
                limit = self.timeout + (grace if grace is not None else 10)
                query = req.stop_query(grace)
                self._call("POST", "/containers/{}/stop", container, query=query, timeout=limit)
                return
            if not self._kill(container, signal):
                return  # not running: nothing to stop
            wait = grace if grace is not None else 10
            if wait > 0:
                try:
                    self._call("POST", "/containers/{}/wait", container, timeout=wait)
                    return
                except (TimeoutError, ConnectionError):
                    pass  # still running after the grace period
            self._kill(container, "SIGKILL")

        await self._run("stop", run, subject=container, deadline=deadline)

    async def reload_files(
        self, container: str, files: tuple[FileContent, ...], *, signal: str, name: str
    ) -> None:
        """Upload ``files`` into the running container, signal it, rename it to ``name``."""
        await self.put_files(container, files)
        await self._run("signal", self._kill, container, signal, subject=container)
        await self._run(
            "rename",
            self._call,
            "POST",
            "/containers/{}/rename",
            container,
            query={"name": name},
            subject=container,
        )
        log.info("container_reloaded", container=container[:12], signal=signal, name=name)

    def _kill(self, container: str, signal: str) -> bool:
        """Send ``signal``; False when the container is not running (409)."""
        try:
            self._call("POST", "/containers/{}/kill", container, query={"signal": signal})
        except EngineHTTPError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def remove(self, container: str, *, force: bool = True) -> None:
        """Remove a container and its anonymous volumes."""
        query = req.remove_query(force=force)
        await self._run(
            "remove",
            self._call,
            "DELETE",
            "/containers/{}",
            container,
            query=query,
            subject=container,
        )

    def logs(
        self, container: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """The container's output, line by line; with ``follow`` until the iterator closes."""
        return streams.container_logs(self._transport, container, tail=tail, follow=follow)

    async def stats(self, container: str) -> Stats:
        """CPU and memory of a running container (the engine samples for about a second)."""
        data: dict[str, Any] = await self._run(
            "stats",
            self._call,
            "GET",
            "/containers/{}/stats",
            container,
            query={"stream": "false"},
            subject=container,
        )
        return stats_from(data)

    async def exec(
        self, container: str, command: Sequence[str], *, timeout: float | None = None
    ) -> ExecResult:
        """Run ``command`` in the container; output is stdout and stderr together."""
        limit = timeout if timeout is not None else self.timeout
        return await self._run(
            "exec",
            streams.exec_in,
            self._transport,
            container,
            command,
            subject=container,
            deadline=limit,
        )

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """This instance's container events from the second of this call on (none missed)."""
        return streams.container_events(self._transport, self.instance, since=int(time.time()))

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._transport.close()


def probe(url: str, *, timeout: float = 2.0) -> str | None:
    """Blocking: the engine's name at ``url`` (e.g. ``Podman Engine``), or None if silent."""
    path = socket_path(url)
    try:
        if path is not None:  # without the SDK: see the module docstring
            get(path, "/_ping", timeout=timeout)
            info = get_json(path, f"/v{API_VERSION}/version", timeout=timeout)
        else:
            info = _sdk_version(url, timeout)
        components = info.get("Components") or [{}]
        return str(components[0].get("Name") or "Docker Engine")
    except Exception:  # any failure means "does not answer"; auto tries the next candidate
        return None


def _sdk_version(url: str, timeout: float) -> Any:
    """The engine's version document through the SDK, after a ping (a ``tcp://`` engine)."""
    import docker

    client = docker.APIClient(base_url=url, version=API_VERSION, timeout=timeout)
    try:
        client.ping()
        return client.version()
    finally:
        client.close()
