"""`SwarmRuntime`: Docker Swarm services through the docker SDK (the swarm twin of `docker.py`).

Swarm's unit is a service, so this adapter offers service-level operations (`snapshot`,
`create_service`, `update_service`, `remove_service`, `ensure_secret`, `service_logs`, ...)
used by the Swarm target. It is an `Engine`, not a container `Runtime`: it has no create,
start, stop, remove, exec or stats (Swarm owns its task containers). It holds a `DockerRuntime`
for the transport (requests, deadlines, call counting, error translation) and for builds,
image checks, pulls and the instance claim. `list()` is the *task view*: one row per current
task (see `swarm_base.task_rows`); `events()` reports services removed behind trueup's back.

Observation is two requests: the service list and the task list, both filtered by the
``trueup.instance`` label. Only this module (and its siblings) imports `docker`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import hashlib
import json
import time
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import structlog

from controller import labels as L
from controller.errors import ConfigError, ContainerNotFound, RuntimeRejected
from controller.runtime import docker_objects as objects
from controller.runtime.base import (
    BuildLogSink,
    BuildRequest,
    BuildResult,
    ContainerInfo,
    ImageInfo,
    LogLine,
    RuntimeEvent,
    network_name,
)
from controller.runtime.docker import API_VERSION, DockerRuntime, parse_time
from controller.runtime.swarm_base import (
    SecretMount,
    ServiceInfo,
    ServiceSpec,
    SwarmSnapshot,
    TaskInfo,
    task_rows,
)
from controller.runtime.swarm_events import merge_streams, running_tasks
from controller.runtime.swarm_networks import ensure_overlay
from controller.runtime.swarm_requests import service_body

log = structlog.get_logger(__name__)

_NS = 1_000_000_000
TASK_POLL_S = 2.0
"""How often `SwarmRuntime.events` looks at the instance's tasks (Swarm has no task events)."""
_EPOCH = datetime.fromtimestamp(0, UTC)


class SwarmRuntime:
    """Services of one trueup instance on the swarm whose manager answers at ``url``: an
    `Engine` (not a container `Runtime`: Swarm owns its task containers).

    It holds ``engine``, the `DockerRuntime` of the manager, for the transport (its requests,
    deadlines, call counting and error translation) and for what a manager shares with a plain
    engine: ping, builds, image checks, pulls, the instance claim and closing.

    ``registry``: where locally built images are pushed so that every node can pull them
    (None: images are used by their local tag, which only a single-node swarm can run).
    """

    kind = "swarm"

    def __init__(self, engine: DockerRuntime, *, registry: str | None = None) -> None:
        self._engine = engine
        self.url = engine.url
        self.instance = engine.instance
        self.build_timeout = engine.build_timeout
        self.registry = registry
        self.calls = engine.calls
        # the transport the service calls share with the engine they run on
        self._run = engine._run
        self._pump = engine._pump
        self._streams = engine._streams
        self._resolved_bind = engine._resolved_bind
        self._networks = engine._networks
        self._manager = False
        self._secrets: dict[str, str] = {}
        self._apps_by_service: dict[str, str] = {}

    @property
    def _client(self) -> Any:
        return self._engine._client

    # -- what a manager shares with a plain engine -----------------------------------------

    async def ping(self) -> bool:
        return await self._engine.ping()

    async def build(self, request: BuildRequest, on_log: BuildLogSink | None = None) -> BuildResult:
        return await self._engine.build(request, on_log)

    async def image_exists(self, image: str) -> bool:
        return await self._engine.image_exists(image)

    async def pull(self, image: str) -> None:
        await self._engine.pull(image)

    async def list_images(self) -> builtins.list[ImageInfo]:
        return await self._engine.list_images()  # the builds live on the manager's engine

    async def remove_image(self, ref: str) -> bool:
        return await self._engine.remove_image(ref)

    async def check_volume(self, name: str, *, adopt: bool = False) -> str | None:
        """`DockerRuntime.check_volume` on the manager's engine (the only node trueup sees)."""
        return await self._engine.check_volume(name, adopt=adopt)

    async def prune_dangling_images(self) -> int:
        return await self._engine.prune_dangling_images()

    async def claim_instance(self, holder: Mapping[str, str]) -> dict[str, str] | None:
        return await self._engine.claim_instance(holder)

    async def release_instance(self) -> None:
        await self._engine.release_instance()

    async def close(self) -> None:
        await self._engine.close()

    # -- the swarm -----------------------------------------------------------------------

    async def check_manager(self) -> None:
        """`ConfigError` unless the engine is a manager of an active swarm (checked once)."""
        if self._manager:
            return
        info: dict[str, Any] = await self._run("info", self._client.info)
        swarm = info.get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            state = swarm.get("LocalNodeState") or "inactive"
            raise ConfigError(
                f"the engine at {self.url} is not a swarm manager (swarm state: {state}); "
                "run `docker swarm init` there, or point --runtime-url at a manager"
            )
        self._manager = True

    async def snapshot(self) -> SwarmSnapshot:
        """This instance's services (one request) and their tasks (one more request)."""
        await self.check_manager()
        selector = {"label": L.instance_filter(self.instance)}
        rows: list[dict[str, Any]] = await self._run(
            "list_services", self._client.services, filters=selector
        )
        services = tuple(sorted((service_info(r) for r in rows), key=lambda s: s.name))
        self._apps_by_service = {s.name: s.app for s in services if s.app}
        if not services:
            return SwarmSnapshot((), ())
        raw: list[dict[str, Any]] = await self._run(
            "list_tasks", self._client.tasks, filters=selector
        )
        ids = {s.id for s in services}
        tasks = tuple(t for t in (task_info(r) for r in raw) if t.service_id in ids)
        return SwarmSnapshot(services, tasks)

    async def list(self) -> list[ContainerInfo]:
        """The task view: one row per current task of this instance (two requests)."""
        return task_rows(await self.snapshot())

    async def inspect_service(self, service_id: str) -> ServiceInfo:
        """One service, fresh (its version, update state, VIP); `ContainerNotFound` if gone."""
        row: dict[str, Any] = await self._run(
            "inspect_service", self._client.inspect_service, service_id, subject=service_id
        )
        return service_info(row)

    async def service_tasks(self, service_id: str) -> tuple[TaskInfo, ...]:
        """Every task of one service (any state)."""
        raw: list[dict[str, Any]] = await self._run(
            "list_tasks", self._client.tasks, filters={"service": service_id}, subject=service_id
        )
        return tuple(task_info(r) for r in raw)

    async def ensure_network(self, name: str | None = None) -> str:
        """Create the instance's overlay network (attachable) when missing; return its name."""
        net = name or network_name(self.instance)
        if net in self._networks:
            return net
        await self.check_manager()
        labels = {L.INSTANCE: self.instance}
        await self._run("ensure_network", ensure_overlay, self._client, net, labels, subject=net)
        self._networks.add(net)
        return net

    async def _ensure_app_networks(self, spec: ServiceSpec) -> None:
        """Create the app's overlay networks (``spec.networks``) when missing; one of that
        name without this instance's labels is refused (`RuntimeRejected`). Looked up on
        every create and update, never cached (a pruned one is made again)."""
        for attachment in spec.networks:
            net = attachment.name
            async with self._engine._network_lock:  # one look-and-create at a time
                label = net.removeprefix(f"trueup-{self.instance}-")
                labels = {L.INSTANCE: self.instance, L.NETWORK: label}
                ensure = ensure_overlay
                await self._run("ensure_network", ensure, self._client, net, labels, subject=net)

    async def prune_networks(self, keep: Collection[str]) -> builtins.list[str]:
        """Remove the instance's app networks not in ``keep`` that no service or task uses
        any more (as on one host); return their names."""
        return await self._engine.prune_networks(keep)

    async def unused_networks(self, keep: Collection[str]) -> builtins.list[str]:
        """The instance's app networks not in ``keep`` still on the swarm (in use or not)."""
        find = objects.unused_app_networks
        args = (self._engine._transport, self.instance, frozenset(keep))
        return await self._run("list_networks", find, *args)

    async def ensure_secret(self, secret: SecretMount) -> str:
        """Create the (content-named, immutable) Swarm secret when missing; return its id."""
        known = self._secrets.get(secret.name)
        if known is not None:
            return known

        def run() -> str:
            api = self._client
            for row in api.secrets(filters={"name": secret.name}):
                if (row.get("Spec") or {}).get("Name") == secret.name:
                    return str(row["ID"])
            try:
                data = secret.data if isinstance(secret.data, bytes) else secret.data.encode()
                created = api.create_secret(secret.name, data, labels=dict(secret.labels))
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                (row,) = [r for r in api.secrets(filters={"name": secret.name})
                          if (r.get("Spec") or {}).get("Name") == secret.name]  # fmt: skip
                return str(row["ID"])
            log.info("secret_created", secret=secret.name)
            return str(created["ID"])

        secret_id = await self._run("ensure_secret", run, subject=secret.name)
        self._secrets[secret.name] = secret_id
        return secret_id

    async def remove_unused_secrets(self, in_use: set[str]) -> tuple[str, ...]:
        """Remove this instance's secrets that no service references; return their names.

        A secret still referenced (by a service outside ``in_use``, or by a task the engine
        still holds) is refused by the engine and kept for the next pass."""

        def run() -> list[str]:
            api = self._client
            removed: list[str] = []
            for row in api.secrets(filters={"label": L.instance_filter(self.instance)}):
                name = str((row.get("Spec") or {}).get("Name") or "")
                if name in in_use:
                    continue
                try:
                    api.remove_secret(row["ID"])
                except docker.errors.APIError as exc:
                    if exc.status_code not in (400, 404, 409):  # in use or gone: keep going
                        raise
                    continue
                removed.append(name)
                self._secrets.pop(name, None)
            return removed

        removed = await self._run("remove_secrets", run)
        if removed:
            log.info("secrets_removed", secrets=sorted(removed))
        return tuple(removed)

    async def create_service(self, spec: ServiceSpec, secret_ids: Mapping[str, str]) -> str:
        """Create the service of ``spec`` on the instance's overlay network; return its id."""
        network = await self.ensure_network()
        await self._ensure_app_networks(spec)
        kwargs = self._service_kwargs(spec, network, secret_ids)

        def run() -> str:
            created = self._client.create_service(name=spec.name, **kwargs)
            return str(created["ID"])

        service_id = await self._run("create_service", run, subject=spec.name)
        log.info("service_created", service=spec.name, id=service_id[:12], image=spec.image)
        return service_id

    async def update_service(
        self, service_id: str, version: int, spec: ServiceSpec, secret_ids: Mapping[str, str]
    ) -> None:
        """Replace the service's spec (Swarm rolls the tasks when their template changed)."""
        network = await self.ensure_network()
        await self._ensure_app_networks(spec)
        kwargs = self._service_kwargs(spec, network, secret_ids)

        def run() -> None:
            result = self._client.update_service(service_id, version, name=spec.name, **kwargs)
            for warning in (result or {}).get("Warnings") or []:
                log.warning("service_update_warning", service=spec.name, warning=warning)

        await self._run("update_service", run, subject=spec.name)
        log.info("service_updated", service=spec.name, replicas=spec.replicas)

    async def remove_service(self, service_id: str) -> None:
        """Remove a service (Swarm stops its tasks); gone already is fine. Volumes stay."""
        try:
            await self._run(
                "remove_service", self._client.remove_service, service_id, subject=service_id
            )
        except ContainerNotFound:
            return
        log.info("service_removed", id=service_id[:12])

    async def push(self, image: str, ref: str) -> None:
        """Tag the local ``image`` as ``ref`` and push it, so every node can pull it."""
        repository, _, tag = ref.rpartition(":")
        if "/" in tag:  # a registry port, not a tag
            repository, tag = ref, "latest"

        def run() -> None:
            api = self._client
            api.tag(image, repository, tag)
            for chunk in api.push(repository, tag, stream=True, decode=True):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise RuntimeRejected(f"push {ref}: {chunk['error']}")

        started = time.monotonic()
        await self._run("push", run, subject=ref, deadline=self.build_timeout)
        log.info("image_pushed", image=ref, seconds=round(time.monotonic() - started, 3))

    def _service_kwargs(
        self, spec: ServiceSpec, network: str, secret_ids: Mapping[str, str]
    ) -> dict[str, Any]:
        """The SDK arguments of create/update: deterministic, so an unchanged spec never rolls.

        The body is `swarm_requests.service_body`'s (pure); the bind paths are resolved on
        this host first (`hostpaths`), and ``Name`` goes to the SDK call on its own."""
        binds = tuple(self._resolved_bind(b) for b in spec.binds)
        body = service_body(
            dataclasses.replace(spec, binds=binds),
            instance=self.instance,
            network=network,
            secret_ids=secret_ids,
        )
        return {
            "task_template": body["TaskTemplate"],
            "labels": body["Labels"],
            "mode": body["Mode"],
            "update_config": body["UpdateConfig"],
            "rollback_config": body["RollbackConfig"],
            "endpoint_spec": body["EndpointSpec"],
        }

    # -- logs ----------------------------------------------------------------------------

    async def service_logs(
        self, app: str, *, tail: int | None = None, follow: bool = False, task: str | None = None
    ) -> AsyncIterator[LogLine]:
        """The service's output (every task, any node); ``LogLine.container`` is
        ``<app>-<slot>``. ``task`` keeps only that task's lines."""
        snap = await self.snapshot()
        service = next((s for s in snap.services if s.app == app), None)
        if service is None:
            raise ContainerNotFound(f"no service of app {app} in instance {self.instance}")
        slots = {t.id: t.slot for t in snap.tasks}
        client = self._streams() if follow else self._client
        params: dict[str, Any] = {
            "details": True,
            "follow": follow,
            "stdout": True,
            "stderr": True,
            "timestamps": True,
            "tail": tail if tail is not None else "all",
            "is_tty": False,
        }

        def open_stream() -> Any:
            return client.service_logs(service.id, **params)

        buffer = ""
        async for chunk in self._pump("service_logs", open_stream, subject=service.name):
            buffer += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
            *complete, buffer = buffer.split("\n")
            for raw in complete:
                line = self._service_line(app, raw.rstrip("\r"), slots, task)
                if line is not None:
                    yield line
        if buffer:
            line = self._service_line(app, buffer, slots, task)
            if line is not None:
                yield line

    @staticmethod
    def _service_line(
        app: str, raw: str, slots: Mapping[str, int | None], only_task: str | None
    ) -> LogLine | None:
        """``<time> <k=v,k=v> <text>`` (timestamps and details) as a `LogLine`."""
        stamp, _, rest = raw.partition(" ")
        when = parse_time(stamp)
        if when is None:
            return LogLine(container=app, text=raw)
        details, _, text = rest.partition(" ")
        attrs = dict(p.partition("=")[::2] for p in details.split(",") if "=" in p)
        task = attrs.get("com.docker.swarm.task.id", "")
        if only_task is not None and task != only_task:
            return None
        slot = slots.get(task)
        return LogLine(container=f"{app}-{slot}" if slot is not None else app, text=text, time=when)

    async def logs(
        self, container: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """One task's lines (``container`` is a task id from `list`), from the service logs."""
        row = await self.inspect(container)
        app = row.app or ""
        async for line in self.service_logs(app, tail=tail, follow=follow, task=container):
            yield line

    async def inspect(self, container: str) -> ContainerInfo:
        """A task row of `list` by task id; `ContainerNotFound` when it is not current."""
        for row in await self.list():
            if row.id == container or row.name == container:
                return row
        raise ContainerNotFound(f"no current task {container} in instance {self.instance}")

    # -- events --------------------------------------------------------------------------

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Services of this instance removed behind trueup's back, as ``destroy`` events
        (Swarm heals tasks itself; a removed service needs a pass), and ``tasks_changed`` for
        an app whose running tasks or their addresses changed (Swarm rescheduled, a node was
        lost or came back), so routes that point at tasks follow them. The stream fails (the
        caller resubscribes with backoff) when the manager stops answering."""
        since = int(time.time())
        return merge_streams(self._service_events(since=since), self._task_changes())

    async def _task_changes(self) -> AsyncIterator[RuntimeEvent]:
        """Swarm sends no task events: the instance's tasks, polled (two list requests every
        `TASK_POLL_S`), as one ``tasks_changed`` event per app whose running set changed."""
        seen: dict[str, frozenset[tuple[str, str]]] | None = None
        while True:
            snapshot = await self.snapshot()
            now = running_tasks(snapshot)
            if seen is not None:
                for app in sorted(set(now) | set(seen)):
                    if now.get(app) == seen.get(app):
                        continue
                    log.info("swarm_tasks_changed", app=app, running=len(now.get(app, ())))
                    yield RuntimeEvent(
                        kind="tasks_changed",
                        container_id="",
                        name=app,
                        labels={L.INSTANCE: self.instance, L.APP: app},
                        time=datetime.now(UTC),
                    )
            seen = now
            await asyncio.sleep(TASK_POLL_S)

    async def _service_events(self, since: int) -> AsyncIterator[RuntimeEvent]:
        client = self._streams()

        def open_stream() -> Any:
            return client.events(since=since, decode=True, filters={"type": "service"})

        async for raw in self._pump("events", open_stream):
            if str(raw.get("Action") or "") != "remove":
                continue
            actor = raw.get("Actor") or {}
            name = str((actor.get("Attributes") or {}).get("name") or "")
            app = self._apps_by_service.get(name)
            if app is None:
                continue
            nanos = raw.get("timeNano")
            yield RuntimeEvent(
                kind="destroy",
                container_id=str(actor.get("ID") or ""),
                name=name,
                labels={L.INSTANCE: self.instance, L.APP: app},
                time=datetime.fromtimestamp(int(nanos) / _NS, UTC) if nanos else _EPOCH,
            )


def service_info(row: Mapping[str, Any]) -> ServiceInfo:
    """A service list (or inspect) row as trueup's `ServiceInfo`."""
    spec = row.get("Spec") or {}
    template = spec.get("TaskTemplate") or {}
    replicated = (spec.get("Mode") or {}).get("Replicated") or {}
    update = row.get("UpdateStatus") or {}
    endpoint = row.get("Endpoint") or {}
    networks = {str(n.get("Target")) for n in template.get("Networks") or []}
    vip = next(
        (
            str(v.get("Addr", "")).split("/")[0]
            for v in endpoint.get("VirtualIPs") or []
            if v.get("NetworkID") in networks and v.get("Addr")
        ),
        None,
    )
    return ServiceInfo(
        id=str(row["ID"]),
        name=str(spec.get("Name") or ""),
        labels=dict(spec.get("Labels") or {}),
        image=str((template.get("ContainerSpec") or {}).get("Image") or ""),
        replicas=int(replicated.get("Replicas") or 0),
        version=int((row.get("Version") or {}).get("Index") or 0),
        update_state=str(update["State"]) if update.get("State") else None,
        update_message=str(update.get("Message") or ""),
        update_order=(spec.get("UpdateConfig") or {}).get("Order"),
        vip=vip,
        published=tuple(
            (int(p["PublishedPort"]), int(p["TargetPort"]))
            for p in endpoint.get("Ports") or []
            if p.get("PublishedPort") and p.get("TargetPort")
        ),
        secrets=tuple(
            str(ref.get("SecretName"))
            for ref in (template.get("ContainerSpec") or {}).get("Secrets") or []
            if ref.get("SecretName")
        ),
        template_changed=_template_changed(row),
        volumes=tuple(
            (str(m.get("Source")), str(m.get("Target")))
            for m in (template.get("ContainerSpec") or {}).get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Source")
        ),
        template_digest=template_digest(template),
    )


def _template_changed(row: Mapping[str, Any]) -> bool:
    """True when the last update changed the task template, i.e. Swarm rolls tasks for it."""
    previous = row.get("PreviousSpec")
    if not previous:
        return False
    current = (row.get("Spec") or {}).get("TaskTemplate") or {}
    return bool(previous.get("TaskTemplate") != current)


#: Parts of a task template that say what a task runs. The digest covers these, not the whole
#: template: a task's copy lacks ``Runtime``, which the engine reports only on the service.
_TASK_DEFINING = (
    "ContainerSpec",
    "Resources",
    "RestartPolicy",
    "Placement",
    "Networks",
    "LogDriver",
    "ForceUpdate",
)


def template_digest(template: Mapping[str, Any]) -> str:
    """sha256 over what a task template says a task runs: equal for a service's current
    template and the tasks made from it, different for tasks of an earlier spec."""
    parts = {key: template.get(key) for key in _TASK_DEFINING}
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def task_info(row: Mapping[str, Any]) -> TaskInfo:
    """A task list row as trueup's `TaskInfo`."""
    status = row.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    slot = row.get("Slot")
    code = container.get("ExitCode")
    return TaskInfo(
        id=str(row["ID"]),
        service_id=str(row.get("ServiceID") or ""),
        slot=int(slot) if isinstance(slot, int) else None,
        node_id=str(row.get("NodeID") or ""),
        state=str(status.get("State") or "unknown"),
        desired_state=str(row.get("DesiredState") or ""),
        message=str(status.get("Message") or ""),
        error=str(status.get("Err") or ""),
        timestamp=parse_time(str(status.get("Timestamp") or row.get("CreatedAt") or "")) or _EPOCH,
        container_id=str(container["ContainerID"]) if container.get("ContainerID") else None,
        exit_code=int(code) if isinstance(code, int) else None,
        template_digest=template_digest(row.get("Spec") or {}),
        addresses=task_addresses(row),
    )


def task_addresses(row: Mapping[str, Any]) -> dict[str, str]:
    """Network name → the task's IP address there (its ``NetworksAttachments``)."""
    found: dict[str, str] = {}
    for attachment in row.get("NetworksAttachments") or []:
        name = str(((attachment.get("Network") or {}).get("Spec") or {}).get("Name") or "")
        addresses = attachment.get("Addresses") or []
        if name and addresses:
            found[name] = str(addresses[0]).split("/")[0]
    return found


def is_swarm_manager(url: str, *, timeout: float = 2.0) -> bool:
    """Blocking: True when the engine at ``url`` is a manager of an active swarm."""
    client = docker.APIClient(base_url=url, version=API_VERSION, timeout=timeout)
    try:
        return bool((client.info().get("Swarm") or {}).get("ControlAvailable"))
    except Exception:  # any failure means "not a manager we can use"; auto moves on
        return False
    finally:
        client.close()
