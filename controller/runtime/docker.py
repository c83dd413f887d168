"""`DockerRuntime`: the runtime contract on the Docker Engine API.

Every call that is one request and one answer (list, inspect, image lookups, ping, version,
stats, and the writes: networks, volumes, create, start, stop, kill, wait, remove) goes through
one method, `DockerRuntime._call`, with the JSON body built here. On a ``unix://`` engine
`_call` speaks HTTP itself (`unixhttp`) and the docker SDK (and requests) is never imported, so
a one-shot ``trueup apply`` that creates, replaces or removes containers does not pay their
start-up time. On any other engine URL (``tcp://``) `_call` sends the same request through the
SDK client's HTTP session. Either way an error status arrives as `unixhttp.EngineHTTPError` and
a stalled or cut connection as ``TimeoutError``/``ConnectionError``.

What streams or is multiplexed (logs, events, builds, pulls, exec) still uses the SDK's
low-level `APIClient`, imported on the first such call; streams are pumped from a thread into
the event loop. Blocking calls run in threads (`asyncio.to_thread`) under a deadline. This
module and `swarm.py` are the only ones that import `docker`; every docker, requests or HTTP
error is translated into trueup's own errors here (`translate`), with the cause kept.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from controller import labels as L
from controller.errors import (
    BuildFailed,
    ContainerNotFound,
    ImageNotFound,
    RuntimeRejected,
    RuntimeTimeout,
    RuntimeUnavailable,
    TrueupError,
)
from controller.runtime import unixhttp
from controller.runtime.base import (
    CLAIM_LABEL_PREFIX,
    EVENT_KINDS,
    BindMount,
    BuildLogSink,
    BuildRequest,
    BuildResult,
    ContainerInfo,
    ContainerSpec,
    ExecResult,
    Health,
    LogLine,
    RuntimeEvent,
    Stats,
    claim_name,
    network_name,
    parse_exit_code,
    parse_health,
    parse_state,
)
from controller.runtime.hostpaths import resolve_bind

log = structlog.get_logger(__name__)


def split_image(image: str) -> tuple[str, str]:
    """``registry:5000/team/app:1.2`` → (``registry:5000/team/app``, ``1.2``); a digest or no
    tag keeps the whole reference with ``latest`` / the digest as given."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return repository, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


T = TypeVar("T")

API_VERSION = "1.41"  # Docker 20.10 and Podman 4's compat API; newer engines accept it too
_RESTART = {"always": "always", "on-failure": "on-failure", "never": "no"}
_NS = 1_000_000_000
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)? ?(.*)$")
_BUILD_LOG_TAIL = 20
# Podman's compat events say "remove" for Docker's "destroy", put the health in a top-level
# "HealthStatus" and add attributes of its own; both dialects are read here.
_ACTION_ALIASES = {"remove": "destroy"}
_EVENT_ATTRIBUTES = frozenset({"name", "image", "exitCode", "containerExitCode", "podId"})


def parse_time(value: str) -> datetime | None:
    """An engine's RFC 3339 time (nanoseconds allowed) as an aware datetime."""
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        return None
    base, fraction, zone, _ = match.groups()
    micros = (fraction or ".0")[1:7].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(f"{base}.{micros}{offset}")
    except ValueError:
        return None


def _split_timestamp(line: str) -> tuple[datetime | None, str]:
    """Split ``2024-01-01T00:00:00.123Z text`` into its time and text."""
    head, sep, rest = line.partition(" ")
    when = parse_time(head) if sep or head[:4].isdigit() else None
    return (when, rest) if when is not None else (None, line)


def translate(exc: BaseException, *, op: str, subject: str = "") -> TrueupError:
    """Map a docker/requests/OS exception to trueup's transient or permanent errors."""
    what = f"{op} {subject}".strip()
    if isinstance(exc, TrueupError):
        return exc
    if isinstance(exc, unixhttp.EngineHTTPError):
        return _from_status(exc.status, exc.explanation, what=what, op=op)
    # The SDK and requests are imported lazily: an exception can only be theirs once they are.
    errors: Any = sys.modules.get("docker.errors")
    http: Any = sys.modules.get("requests.exceptions")
    if errors is not None and isinstance(exc, errors.ImageNotFound):
        return ImageNotFound(f"{what}: image not found: {exc.explanation or exc}")
    if errors is not None and isinstance(exc, errors.BuildError):
        lines = [str(c.get("stream") or c.get("error") or "").rstrip() for c in exc.build_log]
        return BuildFailed(f"{what}: {exc.msg}", log_tail=[x for x in lines if x][-20:])
    if errors is not None and isinstance(exc, errors.APIError):
        return _from_status(exc.status_code, str(exc.explanation or exc), what=what, op=op)
    if isinstance(exc, TimeoutError) or (http is not None and isinstance(exc, http.Timeout)):
        return RuntimeTimeout(f"{what}: engine did not answer in time")
    if (http is not None and isinstance(exc, http.RequestException)) or (
        errors is not None and isinstance(exc, errors.DockerException)
    ):
        return RuntimeUnavailable(f"{what}: engine unreachable: {exc}")
    if isinstance(exc, OSError):
        return RuntimeUnavailable(f"{what}: engine unreachable: {exc}")
    return RuntimeUnavailable(f"{what}: unexpected engine failure: {type(exc).__name__}: {exc}")


def _from_status(code: int | None, explanation: str, *, what: str, op: str) -> TrueupError:
    """An engine's error status as trueup's error: 5xx transient, 404 not found, else refused."""
    if code is None or code >= 500:
        return RuntimeUnavailable(f"{what}: engine error {code}: {explanation}")
    if code == 404:
        if "image" in explanation.lower() and op in ("create", "image_exists", "build"):
            return ImageNotFound(f"{what}: {explanation}")
        return ContainerNotFound(f"{what}: {explanation}")
    return RuntimeRejected(f"{what}: engine refused ({code}): {explanation}")


class DockerRuntime:
    """The runtime contract on a Docker-compatible engine at ``url`` (``unix://``, ``tcp://``).

    Construction does no I/O. ``timeout`` bounds every request except streams and builds
    (``build_timeout``). ``calls`` counts HTTP requests per operation.
    """

    kind = "docker"

    def __init__(
        self,
        url: str,
        *,
        instance: str,
        timeout: float = 30.0,
        build_timeout: float = 900.0,
    ) -> None:
        self.url = url
        self.instance = instance
        self.timeout = timeout
        self.build_timeout = build_timeout
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._local = threading.local()
        self._sdk_client: Any = None  # made on first use: see the module docstring
        self._sdk_lock = threading.Lock()
        self._socket = unixhttp.socket_path(url)
        self._stream_client: Any = None  # no read deadline: follow, events, builds
        self._networks: set[str] = set()

    # -- plumbing ------------------------------------------------------------------------

    @property
    def _client(self) -> Any:
        """The SDK's low-level client with the request deadline (made on first use)."""
        with self._sdk_lock:
            if self._sdk_client is None:
                self._sdk_client = self._new_client(self.timeout)
            return self._sdk_client

    def _new_client(self, timeout: float | None) -> Any:
        import docker

        client = docker.APIClient(base_url=self.url, version=API_VERSION, timeout=timeout)
        client.hooks["response"].append(self._count)
        return client

    def _call(
        self,
        method: str,
        template: str,
        *args: str,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        prefix: str = f"/v{API_VERSION}",
    ) -> Any:
        """One request that is not a stream, e.g. ``_call("POST", "/containers/{}/start", id)``.

        Over the unix socket without the SDK when there is one, else through the SDK client's
        session; counted once per request either way. ``timeout`` (default: the runtime's)
        bounds connecting and each wait for the engine. Returns the answer decoded as JSON
        (its text when the engine says it is ``text/...``), or None for an empty answer.
        Raises `unixhttp.EngineHTTPError` for a status >= 400, and ``TimeoutError``,
        ``ConnectionError`` or another ``OSError`` when the transport fails.
        """
        url_path = unixhttp.api_path(
            f"{prefix}{template}", *args, query=dict(query) if query else None
        )
        data = None if body is None else json.dumps(body).encode()
        limit = self.timeout if timeout is None else timeout
        if self._socket is not None:
            # counted like the SDK's response hook: once an answer (of any status) came back
            try:
                content_type, answer = unixhttp.request(
                    self._socket, method, url_path, body=data, timeout=limit
                )
            except unixhttp.EngineHTTPError:
                self._count(None)
                raise
            self._count(None)
        else:
            content_type, answer = self._sdk_request(method, url_path, data, limit)
        if not answer.strip():
            return None
        if content_type.startswith("text/"):  # /_ping's "OK"
            return answer.decode("utf-8", "replace")
        return json.loads(answer)  # as the SDK did: Podman's stats come without a content type

    def _sdk_request(
        self, method: str, url_path: str, data: bytes | None, timeout: float
    ) -> tuple[str, bytes]:
        """`_call`'s request through the SDK client's session, for engines not on a socket."""
        import requests.exceptions

        client = self._client
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            response = client.request(
                method, f"{client.base_url}{url_path}", data=data, headers=headers, timeout=timeout
            )
        except requests.exceptions.Timeout as exc:
            raise TimeoutError(f"no answer within {timeout:.0f}s: {exc}") from exc
        except requests.exceptions.ConnectionError as exc:
            raise ConnectionError(str(exc)) from exc
        content_type = str(response.headers.get("Content-Type") or "")
        if response.status_code >= 400:
            raise unixhttp.EngineHTTPError(
                response.status_code, unixhttp.explanation(content_type, response.content)
            )
        return content_type, bytes(response.content)

    def _streams(self) -> Any:
        if self._stream_client is None:
            self._stream_client = self._new_client(None)
        return self._stream_client

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        op = getattr(self._local, "op", "other")
        with self._calls_lock:
            self.calls[op] += 1
        return response

    def _in_op(self, op: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in this thread with its HTTP requests counted under ``op``."""
        previous = getattr(self._local, "op", "other")
        self._local.op = op
        try:
            return fn(*args, **kwargs)
        finally:
            self._local.op = previous

    async def _run(
        self,
        op: str,
        fn: Callable[..., T],
        *args: Any,
        subject: str = "",
        deadline: float | None = None,
        **kwargs: Any,
    ) -> T:
        """Run a blocking engine call off the loop, under a deadline, errors translated."""
        limit = deadline if deadline is not None else self.timeout + 1.0
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._in_op, op, fn, *args, **kwargs), timeout=limit
            )
        except TimeoutError as exc:
            raise RuntimeTimeout(f"{op} {subject}: no answer within {limit:.0f}s") from exc
        except Exception as exc:
            raise translate(exc, op=op, subject=subject) from exc

    async def _pump(
        self, op: str, open_stream: Callable[[], Any], subject: str = ""
    ) -> AsyncIterator[Any]:
        """Iterate a blocking SDK stream in a thread; closing the iterator closes the stream."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stopped = threading.Event()
        streams: list[Any] = []

        def put(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the loop is closed: nobody listens any more
                stopped.set()

        def worker() -> None:
            try:
                stream = self._in_op(op, open_stream)
                streams.append(stream)
                if stopped.is_set():
                    _close_quietly(stream)
                    return
                for item in stream:
                    if stopped.is_set():
                        return
                    put("item", item)
                put("end", None)
            except Exception as exc:
                if not stopped.is_set():
                    put("error", exc)

        threading.Thread(target=worker, name=f"trueup-{op}", daemon=True).start()
        try:
            while True:
                kind, item = await queue.get()
                if kind == "item":
                    yield item
                elif kind == "end":
                    return
                else:
                    raise translate(item, op=op, subject=subject) from item
        finally:
            stopped.set()
            for stream in streams:
                _close_quietly(stream)

    def _ulimits(self) -> list[dict[str, Any]] | None:
        """Ulimits every container gets, as ``{"Name", "Soft", "Hard"}``; Docker's defaults do."""
        return None

    def _image_name(self, name: str) -> str:
        """The image name as trueup writes it (engines may qualify it)."""
        return name

    # -- the contract --------------------------------------------------------------------

    async def ping(self) -> bool:
        """True when the engine answers within a few seconds; never raises."""
        limit = min(self.timeout, 5.0)
        try:
            await self._run("ping", self._call, "GET", "/_ping", timeout=limit, deadline=limit)
        except TrueupError:
            return False
        return True

    async def engine_name(self) -> str:
        """The engine's own name from its version endpoint, e.g. ``Docker Engine - Community``."""
        info: dict[str, Any] = await self._run("version", self._call, "GET", "/version")
        components = info.get("Components") or [{}]
        return str(components[0].get("Name") or "Docker Engine")

    async def list(self) -> list[ContainerInfo]:
        """Every container of this instance, from ONE list request (no inspect)."""
        label = L.instance_filter(self.instance)
        rows: list[dict[str, Any]] = await self._run(
            "list",
            self._call,
            "GET",
            "/containers/json",
            query={"all": "1", "filters": json.dumps({"label": [label]})},
        )
        infos = [self._from_row(row) for row in rows]
        return sorted(infos, key=lambda c: c.name)

    def _from_row(self, row: Mapping[str, Any]) -> ContainerInfo:
        status = str(row.get("Status") or "")
        state = parse_state(str(row.get("State") or ""))
        networks = (row.get("NetworkSettings") or {}).get("Networks") or {}
        names = row.get("Names") or [""]
        return ContainerInfo(
            id=str(row["Id"]),
            name=str(names[0]).lstrip("/"),
            image=self._image_name(str(row.get("Image") or "")),
            labels=dict(row.get("Labels") or {}),
            state=state,
            health=parse_health(status),
            created=datetime.fromtimestamp(int(row.get("Created") or 0), UTC),
            ip_address=self._address(networks),
            exit_code=parse_exit_code(status) if state in ("exited", "dead") else None,
            status=status,
        )

    def _address(self, networks: Mapping[str, Any]) -> str | None:
        managed = networks.get(network_name(self.instance)) or {}
        address = managed.get("IPAddress")
        if not address:  # on another network (spec.network): take the first address there
            address = next(
                (n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), ""
            )
        return str(address) or None

    async def inspect(self, container: str) -> ContainerInfo:
        """One container by id or name (a single inspect request)."""
        data: dict[str, Any] = await self._run(
            "inspect", self._call, "GET", "/containers/{}/json", container, subject=container
        )
        state_data = data.get("State") or {}
        state = parse_state(str(state_data.get("Status") or ""))
        health_word = str((state_data.get("Health") or {}).get("Status") or "")
        health: Health | None = (
            health_word if health_word in ("healthy", "unhealthy", "starting") else None  # type: ignore[assignment]  # narrowed by the membership test
        )
        config = data.get("Config") or {}
        networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
        return ContainerInfo(
            id=str(data["Id"]),
            name=str(data.get("Name") or "").lstrip("/"),
            image=self._image_name(str(config.get("Image") or "")),
            labels=dict(config.get("Labels") or {}),
            state=state,
            health=health,
            created=parse_time(str(data.get("Created") or "")) or datetime.fromtimestamp(0, UTC),
            ip_address=self._address(networks),
            exit_code=int(state_data.get("ExitCode", 0)) if state in ("exited", "dead") else None,
            status=state,
        )

    async def image_exists(self, image: str) -> bool:
        """True when ``image`` is on the engine (one inspect request)."""
        try:
            await self._run(
                "image_exists", self._call, "GET", "/images/{}/json", image, subject=image
            )
        except (ImageNotFound, ContainerNotFound):
            return False
        return True

    async def pull(self, image: str) -> None:
        """Pull ``image`` (``name:tag``, ``:latest`` when no tag) from its registry."""
        repository, tag = split_image(image)

        def run() -> None:
            import docker.errors

            try:
                for chunk in self._streams().pull(repository, tag=tag, stream=True, decode=True):
                    if isinstance(chunk, dict) and chunk.get("error"):  # Podman: 200 + error
                        raise docker.errors.ImageNotFound(f"cannot pull {image}: {chunk['error']}")
            except docker.errors.ImageNotFound:
                raise
            except docker.errors.APIError as exc:
                if exc.status_code is not None and exc.status_code < 500:
                    raise
                # an unreachable or refusing registry: the image cannot be had, say so plainly
                raise docker.errors.ImageNotFound(
                    f"cannot pull {image}: {exc.explanation or exc}"
                ) from exc
            log.info("image_pulled", image=image)

        await self._run("pull", run, subject=image)

    async def build(self, request: BuildRequest, on_log: BuildLogSink | None = None) -> BuildResult:
        """Build from a tar stream; lines reach ``on_log`` as the engine prints them."""
        loop = asyncio.get_running_loop()
        client = self._streams()

        def emit(line: str) -> None:
            if on_log is not None:
                loop.call_soon_threadsafe(on_log, line)

        def run() -> BuildResult:
            context = (
                io.BytesIO(request.context)
                if isinstance(request.context, bytes)
                else request.context
            )
            lines: list[str] = []
            image_id = ""
            error = ""
            stream = client.build(
                fileobj=context,
                custom_context=True,
                tag=request.tag,
                dockerfile=request.dockerfile,
                buildargs=dict(request.args) or None,
                target=request.target,
                labels=dict(request.labels) or None,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
            )
            for chunk in stream:
                text = str(chunk.get("stream") or "")
                for line in text.splitlines():
                    if line.strip():
                        lines.append(line)
                        emit(line)
                if chunk.get("error"):
                    error = str(chunk["error"]).strip()
                    lines.append(error)
                    emit(error)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
            if error:
                raise BuildFailed(
                    f"build {request.tag}: {error}", log_tail=lines[-_BUILD_LOG_TAIL:]
                )
            if not image_id:
                image_id = str(client.inspect_image(request.tag)["Id"])
            return BuildResult(image_id=image_id, tag=request.tag, log=tuple(lines))

        started = time.monotonic()
        result = await self._run("build", run, subject=request.tag, deadline=self.build_timeout)
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
        if net in self._networks:
            return net

        def run() -> None:
            if self._find_network(net) is not None:
                return
            try:
                self._create_network(net, labels={L.INSTANCE: self.instance})
            except unixhttp.EngineHTTPError as exc:
                if exc.status != 409:  # created meanwhile by someone else: fine
                    raise
            log.info("network_created", network=net)

        await self._run("ensure_network", run, subject=net)
        self._networks.add(net)
        return net

    def _find_network(self, name: str) -> dict[str, Any] | None:
        """The network named exactly ``name`` (the engine's name filter also matches parts)."""
        rows: list[dict[str, Any]] = (
            self._call("GET", "/networks", query={"filters": json.dumps({"name": [name]})}) or []
        )
        return next((n for n in rows if n.get("Name") == name), None)

    def _create_network(
        self, name: str, *, labels: Mapping[str, str], internal: bool = False
    ) -> None:
        body: dict[str, Any] = {"Name": name, "Driver": "bridge", "CheckDuplicate": True}
        if internal:
            body["Internal"] = True
        body["Labels"] = dict(labels)
        self._call("POST", "/networks/create", body=body)

    async def claim_instance(self, holder: Mapping[str, str]) -> dict[str, str] | None:
        """The claim is an internal network named ``trueup-claim-<instance>`` labelled with
        the holder; the engine refuses a second network of that name (409), atomically."""
        name = claim_name(self.instance)

        def run() -> dict[str, str] | None:
            labels = {L.INSTANCE: self.instance}
            labels.update({f"{CLAIM_LABEL_PREFIX}{k}": v for k, v in holder.items()})
            try:
                self._create_network(name, labels=labels, internal=True)
                return None
            except unixhttp.EngineHTTPError as exc:
                # Docker answers 409; Podman 500 "network name ... already used"
                if exc.status != 409 and "already" not in exc.explanation:
                    raise
            found = self._find_network(name) or {}
            current = found.get("Labels") or {}
            return {
                k.removeprefix(CLAIM_LABEL_PREFIX): str(v)
                for k, v in current.items()
                if k.startswith(CLAIM_LABEL_PREFIX)
            }

        return await self._run("claim_instance", run, subject=name)

    async def release_instance(self) -> None:
        name = claim_name(self.instance)

        def run() -> None:
            try:
                self._call("DELETE", "/networks/{}", name)
            except unixhttp.EngineHTTPError as exc:
                if exc.status != 404:  # no claim: nothing to release
                    raise

        await self._run("release_instance", run, subject=name)

    async def ensure_volume(self, name: str, *, legacy: str | None = None) -> str:
        """The volume to mount for ``name``: it, when it carries this instance's label; else
        an existing ``legacy`` volume (pre-scoping name) with that label; else ``name``, created
        with the label. A volume there without the label is refused (`RuntimeRejected`), and
        so is an unlabelled or foreign ``legacy`` one: it may hold this app's data, and the app
        must not start on an empty volume beside it (README, "Named volumes"). Trueup never
        deletes volumes."""

        def run() -> str:
            found = self._volume(name)
            if found is not None:
                owner = self._volume_owner(found)
                if owner != self.instance:
                    raise RuntimeRejected(
                        f"volume {name}: exists but {_owned_by(owner)}, not by instance "
                        f"{self.instance}; refusing to mount it"
                    )
                return name
            if legacy is not None and legacy != name:
                old = self._volume(legacy)
                if old is not None:
                    owner = self._volume_owner(old)
                    if owner == self.instance:
                        log.info("volume_kept_old_name", volume=legacy, scoped=name)
                        return legacy
                    raise RuntimeRejected(
                        f"volume {legacy}: exists but {_owned_by(owner)}, not by instance "
                        f"{self.instance}; refusing to mount it, or to start on a new empty "
                        f"volume {name} while it may hold this app's data: copy what it should "
                        f"keep into {name} (created with label {L.INSTANCE}={self.instance}), "
                        "see README, Named volumes"
                    )
            body = {"Name": name, "Labels": {L.INSTANCE: self.instance}}
            self._call("POST", "/volumes/create", body=body)
            log.info("volume_created", volume=name)
            return name

        return await self._run("ensure_volume", run, subject=name)

    def _volume(self, name: str) -> dict[str, Any] | None:
        """The engine's volume ``name`` (blocking), None when there is none."""
        try:
            found: dict[str, Any] = self._call("GET", "/volumes/{}", name) or {}
        except unixhttp.EngineHTTPError as exc:
            if exc.status != 404:
                raise
            return None
        return found

    @staticmethod
    def _volume_owner(volume: Mapping[str, Any]) -> str | None:
        labels = volume.get("Labels") or {}
        owner = labels.get(L.INSTANCE)
        return str(owner) if owner is not None else None

    async def create(self, spec: ContainerSpec) -> str:
        """Create a container from ``spec`` on the managed network; returns its id."""
        network = self._managed_network(spec)
        if network is not None:
            await self.ensure_network(network)
        binds = tuple(self._resolved_bind(b) for b in spec.binds)
        volumes = [
            replace(v, name=await self.ensure_volume(v.name, legacy=v.legacy)) for v in spec.volumes
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
        return container_id

    def _resolved_bind(self, bind: BindMount) -> BindMount:
        """``bind`` with its host path's symlinks resolved on this host (`hostpaths`)."""
        if bind.within is None:
            return bind
        real = resolve_bind(bind.host_path, bind.within, local=self._socket is not None)
        return replace(bind, host_path=real)

    def _managed_network(self, spec: ContainerSpec) -> str | None:
        """The network trueup puts the container on, or None for ``host``/``none``/... modes."""
        if spec.network_mode in (None, "bridge"):
            return spec.network or network_name(self.instance)
        return None

    def _create_body(self, spec: ContainerSpec) -> dict[str, Any]:
        """The ``POST /containers/create`` body for ``spec``.

        It is the body the docker SDK's ``create_container`` sent for the same arguments (keys
        it leaves out when unset are left out here too), so the engine sees the request it
        always saw.
        """
        labels = {**spec.labels, L.INSTANCE: self.instance}
        network = self._managed_network(spec)
        aliases = list(spec.aliases) or ([labels[L.APP]] if L.APP in labels else [])
        binds = [
            f"{v.name}:{v.mount_path}:{'ro' if v.read_only else 'rw'}" for v in spec.volumes
        ] + [f"{b.host_path}:{b.mount_path}:{'ro' if b.read_only else 'rw'}" for b in spec.binds]
        port_bindings: dict[str, list[dict[str, str]]] = {}
        for p in spec.ports:
            if p.host_port is not None:
                port_bindings[f"{p.container_port}/{p.protocol}"] = [
                    {"HostIp": p.host_ip or "", "HostPort": str(p.host_port)}
                ]
        host_config: dict[str, Any] = {
            "NetworkMode": network or spec.network_mode or "default",
            "RestartPolicy": {"Name": _RESTART[spec.restart_policy]},
        }
        optional_host: dict[str, Any] = {
            "Binds": binds or None,
            "PortBindings": port_bindings or None,
            "Init": True if spec.init else None,
            "Memory": spec.memory,
            "NanoCpus": int(spec.cpus * _NS) if spec.cpus else None,
            "Privileged": True if spec.privileged else None,
            "CapAdd": list(spec.cap_add) or None,
            "Ulimits": self._ulimits(),
        }
        host_config.update({k: v for k, v in optional_host.items() if v is not None})
        healthcheck = None
        if spec.healthcheck is not None:
            hc = spec.healthcheck
            healthcheck = {
                "Test": list(hc.test),
                "Interval": int(hc.interval * _NS),
                "Timeout": int(hc.timeout * _NS),
                "Retries": hc.retries,
                "StartPeriod": int(hc.start_period * _NS),
            }
        endpoint = {"Aliases": aliases} if aliases else {}
        body: dict[str, Any] = {
            "Image": spec.image,
            "Cmd": list(spec.command) if spec.command is not None else None,
            "Entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
            "Env": [f"{k}={v}" for k, v in spec.env.items()] or None,
            "WorkingDir": spec.working_dir,
            "User": spec.user,
            "Labels": labels,
            "ExposedPorts": {f"{p.container_port}/{p.protocol}": {} for p in spec.ports} or None,
            "HostConfig": host_config,
            "NetworkingConfig": (
                {"EndpointsConfig": {network: endpoint}} if network is not None else None
            ),
            "Healthcheck": healthcheck,
            "StopSignal": spec.stop_signal,
            "StopTimeout": (
                math.ceil(spec.stop_grace_period) if spec.stop_grace_period is not None else None
            ),
            # fields the SDK's create_container always sent (detach=False, no terminal)
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "AttachStdin": False,
            "AttachStdout": True,
            "AttachStderr": True,
            "NetworkDisabled": False,
        }
        return {k: v for k, v in body.items() if v is not None}

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
                self._call(
                    "POST",
                    "/containers/{}/stop",
                    container,
                    query={"t": str(grace)} if grace is not None else None,
                    timeout=self.timeout + (grace if grace is not None else 10),
                )
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

    def _kill(self, container: str, signal: str) -> bool:
        """Send ``signal``; False when the container is not running (409)."""
        try:
            self._call("POST", "/containers/{}/kill", container, query={"signal": signal})
        except unixhttp.EngineHTTPError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def remove(self, container: str, *, force: bool = True) -> None:
        """Remove a container and its anonymous volumes."""
        await self._run(
            "remove",
            self._call,
            "DELETE",
            "/containers/{}",
            container,
            query={"v": "1", "force": "1" if force else "0"},
            subject=container,
        )

    async def logs(
        self, container: str, *, tail: int | None = None, follow: bool = False
    ) -> AsyncIterator[LogLine]:
        """The container's output, line by line; with ``follow`` until the iterator closes."""
        if not follow:
            raw: bytes = await self._run(
                "logs",
                self._client.logs,
                container,
                timestamps=True,
                tail=tail if tail is not None else "all",
                subject=container,
            )
            for line in raw.decode("utf-8", "replace").splitlines():
                when, text = _split_timestamp(line)
                yield LogLine(container=container, text=text, time=when)
            return

        client = self._streams()

        def open_stream() -> Any:
            return client.logs(
                container,
                stream=True,
                follow=True,
                timestamps=True,
                tail=tail if tail is not None else "all",
            )

        buffer = ""
        async for chunk in self._pump("logs", open_stream, subject=container):
            buffer += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
            *complete, buffer = buffer.split("\n")
            for line in complete:
                when, text = _split_timestamp(line.rstrip("\r"))
                yield LogLine(container=container, text=text, time=when)
        if buffer:
            when, text = _split_timestamp(buffer)
            yield LogLine(container=container, text=text, time=when)

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

        def run() -> ExecResult:
            api = self._client
            exec_id = api.exec_create(container, list(command), stdout=True, stderr=True)["Id"]
            output = api.exec_start(exec_id)
            code = api.exec_inspect(exec_id).get("ExitCode")
            text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
            return ExecResult(exit_code=int(code) if code is not None else -1, output=text)

        limit = timeout if timeout is not None else self.timeout
        return await self._run("exec", run, subject=container, deadline=limit)

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """This instance's container events from the second of this call on (none missed)."""
        return self._events(since=int(time.time()))

    async def _events(self, since: int) -> AsyncIterator[RuntimeEvent]:
        client = self._streams()

        def open_stream() -> Any:
            return client.events(
                since=since,
                decode=True,
                filters={"type": "container", "label": L.instance_filter(self.instance)},
            )

        async for raw in self._pump("events", open_stream):
            event = self._event_from(raw)
            if event is not None:
                yield event

    def _event_from(self, raw: Mapping[str, Any]) -> RuntimeEvent | None:
        action = str(raw.get("Action") or raw.get("status") or "")
        kind, _, detail = action.partition(":")
        kind = _ACTION_ALIASES.get(kind.strip(), kind.strip())
        if kind not in EVENT_KINDS:
            return None
        actor = raw.get("Actor") or {}
        attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
        if attributes.get(L.INSTANCE) != self.instance:
            return None
        health_word = (detail.strip() or str(raw.get("HealthStatus") or "")).lower()
        health: Health | None = None
        if kind == "health_status" and health_word in ("healthy", "unhealthy", "starting"):
            health = health_word  # type: ignore[assignment]  # narrowed by the membership test
        exit_code = attributes.get("exitCode")
        nanos = raw.get("timeNano")
        when = (
            datetime.fromtimestamp(int(nanos) / _NS, UTC)
            if nanos
            else datetime.fromtimestamp(int(raw.get("time") or 0), UTC)
        )
        labels = {k: v for k, v in attributes.items() if k not in _EVENT_ATTRIBUTES}
        return RuntimeEvent(
            kind=kind,
            container_id=str(actor.get("ID") or raw.get("id") or ""),
            name=attributes.get("name", ""),
            labels=labels,
            time=when,
            exit_code=int(exit_code) if exit_code and exit_code.lstrip("-").isdigit() else None,
            health=health,
        )

    async def close(self) -> None:
        """Close the HTTP connections."""
        for client in (self._sdk_client, self._stream_client):
            if client is not None:
                await asyncio.to_thread(client.close)


def _owned_by(owner: str | None) -> str:
    return f"is owned by instance {owner}" if owner else "was not created by trueup"


def stats_from(data: Mapping[str, Any]) -> Stats:
    """Docker's stats document as trueup's `Stats` (CPU percent over all cores)."""
    cpu = data.get("cpu_stats") or {}
    pre = data.get("precpu_stats") or {}
    cpu_delta = float((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - float(
        (pre.get("cpu_usage") or {}).get("total_usage") or 0
    )
    system_delta = float(cpu.get("system_cpu_usage") or 0) - float(pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    percent = (cpu_delta / system_delta) * float(online or 1) * 100.0 if system_delta > 0 else 0.0
    memory = data.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    usage = max(0, int(memory.get("usage") or 0) - int(cache or 0))
    limit = memory.get("limit")
    pids = (data.get("pids_stats") or {}).get("current")
    return Stats(
        cpu_percent=max(0.0, percent),
        memory_bytes=usage,
        memory_limit=int(limit) if limit else None,
        pids=int(pids) if pids is not None else None,
    )


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # closing a half-dead socket may fail; nothing is left to clean up
        log.debug("stream_close_failed")


def probe(url: str, *, timeout: float = 2.0) -> str | None:
    """Blocking: the engine's name at ``url`` (e.g. ``Podman Engine``), or None if silent."""
    path = unixhttp.socket_path(url)
    if path is not None:
        try:
            unixhttp.get(path, "/_ping", timeout=timeout)
            info = unixhttp.get_json(path, f"/v{API_VERSION}/version", timeout=timeout)
            components = info.get("Components") or [{}]
            return str(components[0].get("Name") or "Docker Engine")
        except Exception:  # any failure means "does not answer"; auto tries the next candidate
            return None
    import docker

    client = docker.APIClient(base_url=url, version=API_VERSION, timeout=timeout)
    try:
        client.ping()
        components = client.version().get("Components") or [{}]
        return str(components[0].get("Name") or "Docker Engine")
    except Exception:  # any failure means "does not answer"; auto tries the next candidate
        return None
    finally:
        client.close()
