"""Manifest v1: the pydantic models of an ``App`` document, as committed to git.

Field names are snake_case in Python and camelCase in YAML (``workingDir``). Unknown fields are
errors. Durations and sizes are parsed into seconds and bytes. Cross-field rules (image XOR
build, a route naming a declared port, ...) raise ``rule`` errors whose ``at`` context names the
offending field, so the loader can point at the right line. Called by ``manifests.loader``; the
JSON Schema in ``schemas/`` is generated from these models (``trueup schema``).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import signal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake
from pydantic_core import PydanticCustomError

from controller.manifests.units import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size

API_VERSION = "trueup/v1"

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
_HTTP_PATH = re.compile(r"^/[^\s\x00-\x1f\x7f]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SIGNALS = sorted(s.name for s in signal.Signals if not s.name.startswith("SIG_"))

# Tags of tagged unions; they appear in pydantic error locations and the loader drops them.
TAG_PLAIN = "<value>"
TAG_SECRET = "<secretRef>"
UNION_TAGS = frozenset({TAG_PLAIN, TAG_SECRET})


def rule(message: str, at: str | None = None) -> PydanticCustomError:
    """A cross-field rule violation; ``at`` is the dotted field path (relative to the model)."""
    return PydanticCustomError("rule", message, {"at": at or ""})


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1 to 63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _relative_path(value: str) -> str:
    if value.startswith("/") or value.startswith("\\"):
        raise ValueError(f"{value!r} is absolute; give a path relative to the repository root")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{value!r} leaves the repository; build contexts must stay inside it")
    return "." if normal in ("", ".") else normal


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path in the container")
    return posixpath.normpath(value)


def _hostname(value: str) -> str:
    lowered = value.lower().rstrip(".")
    if not _HOSTNAME.match(lowered) or len(lowered) > 253:
        raise ValueError(f"{value!r} is not a valid host name")
    return lowered


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0 or ::1)"
        ) from None


def _http_path(value: str) -> str:
    if not _HTTP_PATH.match(value):
        raise ValueError(
            f"{value!r} is not a URL path: start with '/', no spaces or control characters"
        )
    return value


def _signal_name(value: str) -> str:
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in _SIGNALS:
        raise ValueError(f"{value!r} is not a signal name (e.g. SIGTERM, SIGINT, SIGQUIT)")
    return name


def _label_key(value: str) -> str:
    if not _LABEL_KEY.match(value):
        raise ValueError(
            f"{value!r} is not a valid label key (letters, digits, '.', '_', '-', '/')"
        )
    return value


def _scalar_to_str(value: object) -> object:
    """YAML turns ``VERSION: 1.2`` into a float; accept numbers where a string is meant."""
    if isinstance(value, bool):
        raise ValueError('a true/false value is ambiguous here; quote it, e.g. "true"')
    if isinstance(value, int | float):
        return str(value)
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 500ms, 5s, 1m, 2h (a bare number is seconds).",
        }
    ),
]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": SIZE_PATTERN},
                {"type": "integer", "minimum": 0},
            ],
            "description": "A size in bytes: 256Mi, 1Gi, 512M, 1G (a bare integer is bytes).",
        }
    ),
]
Text = Annotated[str, BeforeValidator(_scalar_to_str)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Model(BaseModel):
    """Base of every manifest model: camelCase in YAML, unknown fields refused, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=False,
    )


def _sops_file(value: str) -> str:
    return _repo_source(value)


class SecretRef(Model):
    """Names one key of a secret: in a file on the host (``name``: ``<secrets-dir>/<name>.env``)
    or in a SOPS-encrypted file of the repository (``file``, relative to the repository root,
    decrypted with the host's age identities)."""

    name: DnsLabel | None = None
    file: Annotated[str, AfterValidator(_sops_file)] | None = None
    key: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]

    @model_validator(mode="after")
    def _one_place(self) -> SecretRef:
        if (self.name is None) == (self.file is None):
            raise rule("a secretRef needs exactly one of name (host secret) or file (SOPS file)")
        return self

    @property
    def secret(self) -> str:
        """Which secret it reads: the host secret's name, or ``file:<path>`` of a SOPS file."""
        return self.name if self.name is not None else f"file:{self.file}"


class SecretValue(Model):
    """An environment value taken from a host secret, never from git."""

    secret_ref: SecretRef


def _env_tag(value: Any) -> str:
    return TAG_SECRET if isinstance(value, dict | SecretValue) else TAG_PLAIN


EnvValue = Annotated[
    Annotated[Text, Tag(TAG_PLAIN)] | Annotated[SecretValue, Tag(TAG_SECRET)],
    Discriminator(_env_tag),
]


class ContainerPort(Model):
    """A port the app listens on; published on the host only when ``hostPort`` is given."""

    name: DnsLabel
    container_port: Port
    protocol: Literal["tcp", "udp"] = "tcp"
    host_port: Port | None = None
    host_ip: Annotated[str, AfterValidator(_ip_address)] | None = None

    @model_validator(mode="after")
    def _host_ip_needs_port(self) -> ContainerPort:
        if self.host_ip is not None and self.host_port is None:
            raise rule("hostIp is only meaningful together with hostPort", "hostIp")
        return self


class Route(Model):
    """Publish ``host`` (+ ``path`` prefix) through the reverse proxy to the named port."""

    host: Annotated[str, AfterValidator(_hostname)]
    path: Annotated[str, Field(pattern=r"^/[^\s]*$")] = "/"
    port: str


class HttpCheck(Model):
    """Healthy when ``GET path`` on ``port`` answers 2xx or 3xx (``path`` may carry a query)."""

    path: Annotated[
        str,
        AfterValidator(_http_path),
        WithJsonSchema({"type": "string", "pattern": _HTTP_PATH.pattern}),
    ] = "/"
    port: str | Port


class TcpCheck(Model):
    """Healthy when ``port`` accepts a TCP connection."""

    port: str | Port


class HealthCheck(Model):
    """Exactly one of ``http``, ``tcp``, ``exec``, with its timing."""

    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    exec: Annotated[list[str], Field(min_length=1)] | None = None
    interval: Duration = 5.0
    timeout: Duration = 2.0
    retries: Annotated[int, Field(ge=1, le=100)] = 3
    start_period: Duration = 0.0

    @model_validator(mode="after")
    def _exactly_one_probe(self) -> HealthCheck:
        given = [k for k in ("http", "tcp", "exec") if getattr(self, k) is not None]
        if len(given) != 1:
            raise rule(
                "a healthCheck needs exactly one of http, tcp or exec"
                + (f" (got {', '.join(given)})" if given else ""),
                given[1] if len(given) > 1 else None,
            )
        if self.interval <= 0 or self.timeout <= 0:
            raise rule("interval and timeout must be greater than zero", "interval")
        return self


class Resources(Model):
    """Limits: ``memory`` in bytes (``256Mi``), ``cpus`` as a fraction of cores (``0.5``)."""

    memory: Size | None = None
    cpus: Annotated[float, Field(gt=0, le=1024)] | None = None

    @field_validator("memory")
    @classmethod
    def _memory_floor(cls, value: int | None) -> int | None:
        if value is not None and value < 6 * 1024 * 1024:
            raise ValueError("memory below 6Mi cannot start a container")
        return value


def _engine_volume(value: str) -> str:
    if value.startswith("trueup-"):
        raise ValueError(
            f"{value!r}: volumes named trueup-* are trueup's own (one instance's), not to be named"
        )
    return value


class VolumeMount(Model):
    """A named volume owned by the app; prune never deletes it. Its engine name is
    ``trueup-<instance>_<name>``, or ``volumeName`` exactly (a compose project's
    ``<project>_<volume>``, so data made by ``docker compose up`` is found)."""

    name: DnsLabel
    mount_path: Annotated[str, AfterValidator(_absolute_path)]
    read_only: bool = False
    volume_name: (
        Annotated[
            str,
            Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
            AfterValidator(_engine_volume),
        ]
        | None
    ) = None


class BindMount(Model):
    """A host path mounted into the container; refused unless the controller allows the path."""

    host_path: Annotated[str, AfterValidator(_absolute_path)]
    mount_path: Annotated[str, AfterValidator(_absolute_path)]
    read_only: bool = False


def _file_mode(value: object) -> object:
    """``"0444"`` (octal text) or a YAML octal number (``0444``) → the permission bits."""
    if isinstance(value, str):
        if not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError(f'{value!r} is not a file mode: give octal digits, e.g. "0444"')
        return int(value, 8)
    return value


def _container_file_path(value: str) -> str:
    path = _absolute_path(value)
    if path == "/":
        raise ValueError("'/' cannot be a file's path; name a file or folder below it")
    return path


def _repo_source(value: str) -> str:
    if value.startswith("/") or value.startswith("\\"):
        raise ValueError(f"{value!r} is absolute; give a path relative to the repository root")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../") or normal in ("", "."):
        raise ValueError(f"{value!r} must name a file or folder inside the repository")
    return normal


class FileEntry(Model):
    """A file (or folder) in the container: from the repository at the same commit
    (``source``), from the host's secrets dir (``secretRef`` / ``secretFile``), or inline
    text (``content``, as a compose ``configs:`` entry gives it)."""

    path: Annotated[str, AfterValidator(_container_file_path)]
    source: Annotated[str, AfterValidator(_repo_source)] | None = None
    secret_ref: SecretRef | None = None
    secret_file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")] | None = None
    content: Annotated[str, Field(max_length=1024 * 1024)] | None = None
    """Inline text (a compose ``configs: content:``), committed with the manifest."""
    mode: Annotated[int, BeforeValidator(_file_mode), Field(ge=0, le=0o777)] | None = None
    owner: Annotated[str, Field(pattern=r"^[0-9]{1,10}(:[0-9]{1,10})?$")] | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> FileEntry:
        origins = ("source", "secretRef", "secretFile", "content")
        given = [k for k in origins if getattr(self, to_snake(k)) is not None]
        if len(given) != 1:
            raise rule(
                "a file needs exactly one of source, secretRef or secretFile"
                + (f" (got {', '.join(given)})" if given else ""),
                given[1] if len(given) > 1 else None,
            )
        return self

    @property
    def secret(self) -> bool:
        """True when the content comes from the host's secrets dir."""
        return self.secret_ref is not None or self.secret_file is not None

    def effective_mode(self) -> int:
        """The mode in force: 0444 for files from git, 0400 for secret files."""
        return self.mode if self.mode is not None else (0o400 if self.secret else 0o444)

    def uid_gid(self) -> tuple[int, int]:
        """The numeric owner; default root (0:0)."""
        uid, _, gid = (self.owner or "0:0").partition(":")
        return int(uid), int(gid or uid)


class EnvFrom(Model):
    """A dotenv file of the repository (``KEY=VALUE`` lines) read at the same commit: its
    variables are the app's environment, below ``env`` (which wins on a clash)."""

    file: Annotated[str, AfterValidator(_repo_source)]


class Reload(Model):
    """Apply a change of ``files`` alone in place: upload them, then send ``signal``."""

    signal: Annotated[str, AfterValidator(_signal_name)] = "SIGHUP"


class AppNetwork(Model):
    """A network of the instance the app joins (``trueup-<instance>-<name>``, made and removed
    by trueup), answering there to ``aliases`` (default: the app name)."""

    name: DnsLabel
    aliases: Annotated[list[DnsLabel], Field(min_length=1)] | None = None

    @field_validator("aliases")
    @classmethod
    def _distinct_aliases(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("an alias is listed twice")
        return value


class Build(Model):
    """Build the image from a folder of the repository, at the same commit."""

    context: Annotated[str, AfterValidator(_relative_path)]
    dockerfile: Annotated[str, AfterValidator(_relative_path)] = "Dockerfile"
    args: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Text] = {}
    target: str | None = None


class Update(Model):
    """How a changed app replaces its replicas.

    ``start-first`` starts the new replica, waits until it is healthy, then stops the old one
    (zero downtime). ``stop-first`` stops the old one first. Unset: start-first, unless the app
    publishes a host port or mounts a volume, which two replicas cannot share.
    """

    strategy: Literal["start-first", "stop-first"] | None = None


class SwarmOptions(Model):
    """What only a Docker Swarm service has (the Docker and Podman runtimes ignore it).

    ``endpointMode``: ``vip`` (Swarm's default: one virtual IP per service, balanced by the
    kernel's IPVS) or ``dnsrr`` (no virtual IP: the service name resolves to its tasks'
    addresses, routes point at the tasks, host ports are published on the nodes that run a
    task). Nodes whose kernel lacks IPVS need ``dnsrr``.
    """

    endpoint_mode: Literal["vip", "dnsrr"] = "vip"


class Spec(Model):
    """What should run for one app."""

    image: Annotated[str, Field(min_length=1, pattern=r"^[^\s]+$")] | None = None
    build: Build | None = None
    command: list[Text] | None = None
    entrypoint: list[Text] | None = None
    working_dir: Annotated[str, AfterValidator(_absolute_path)] | None = None
    user: Text | None = None
    env: dict[Annotated[str, Field(pattern=_ENV_NAME.pattern)], EnvValue] = {}
    env_from: list[EnvFrom] = []
    """Dotenv files of the repository; a later file wins over an earlier one, ``env`` over all."""
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    ports: list[ContainerPort] = []
    routes: list[Route] = []
    health_check: HealthCheck | None = None
    resources: Resources = Resources()
    volumes: list[VolumeMount] = []
    restart_policy: Literal["always", "on-failure", "never"] = "always"
    init: bool = False
    stop_signal: Annotated[str, AfterValidator(_signal_name)] = "SIGTERM"
    stop_grace_period: Duration = 10.0
    depends_on: list[DnsLabel] = []
    update: Update = Update()
    suspend: bool = False
    privileged: bool = False
    network_mode: Literal["bridge", "host", "none"] = "bridge"
    binds: list[BindMount] = []
    cap_add: list[Annotated[str, Field(pattern=r"^[A-Z_]+$")]] = []
    files: list[FileEntry] = []
    reload: Reload | None = None
    networks: Annotated[list[AppNetwork], Field(min_length=1)] | None = None
    """Unset: the instance network, the app name as alias (as before networks existed)."""
    swarm: SwarmOptions | None = None
    """Swarm only (ignored on Docker and Podman); unset: ``endpointMode: vip``."""

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.image is not None and self.build is not None:
            raise rule("set either image or build, not both", "build")
        if self.image is None and self.build is None:
            raise rule("set one of image or build", None)
        names = [p.name for p in self.ports]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise rule(f"port name {name!r} is declared twice", f"ports.{i}.name")
        for i, route in enumerate(self.routes):
            if route.port not in names:
                declared = ", ".join(names) or "none"
                raise rule(
                    f"route port {route.port!r} is not a declared port (declared: {declared})",
                    f"routes.{i}.port",
                )
        if self.health_check is not None:
            probe = self.health_check.http or self.health_check.tcp
            if probe is not None and isinstance(probe.port, str) and probe.port not in names:
                kind = "http" if self.health_check.http else "tcp"
                raise rule(
                    f"healthCheck port {probe.port!r} is not a declared port",
                    f"healthCheck.{kind}.port",
                )
        mounts = [v.mount_path for v in self.volumes] + [b.mount_path for b in self.binds]
        for path in mounts:
            if mounts.count(path) > 1:
                raise rule(f"two mounts at {path!r}", "volumes")
        file_paths = [f.path for f in self.files]
        for i, path in enumerate(file_paths):
            if path in file_paths[:i]:
                raise rule(f"two files at {path!r}", f"files.{i}.path")
        if len(set(self.depends_on)) != len(self.depends_on):
            raise rule("dependsOn lists an app twice", "dependsOn")
        self._check_networks()
        return self

    def _check_networks(self) -> None:
        if self.networks is None:
            return
        if self.network_mode != "bridge":
            raise rule(f"networks cannot be used with networkMode {self.network_mode}", "networks")
        names = [n.name for n in self.networks]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise rule(f"network {name!r} is listed twice", f"networks.{i}.name")

    def secret_refs(self) -> dict[str, SecretRef]:
        """The environment variables that come from secrets, by variable name."""
        return {k: v.secret_ref for k, v in self.env.items() if isinstance(v, SecretValue)}

    def effective_strategy(self) -> Literal["start-first", "stop-first"]:
        """The update strategy in force, applying the default described on ``Update``."""
        if self.update.strategy is not None:
            return self.update.strategy
        if any(p.host_port is not None for p in self.ports) or self.volumes:
            return "stop-first"
        return "start-first"


class Metadata(Model):
    """The app's name (a DNS label; also its DNS alias on the managed network) and labels."""

    name: DnsLabel
    labels: dict[LabelKey, Text] = {}


class App(Model):
    """One ``kind: App`` document."""

    api_version: Literal["trueup/v1"]
    kind: Literal["App"]
    metadata: Metadata
    spec: Spec

    @model_validator(mode="after")
    def _not_self_dependent(self) -> App:
        if self.metadata.name in self.spec.depends_on:
            raise rule("an app cannot depend on itself", "spec.dependsOn")
        return self

    @property
    def name(self) -> str:
        return self.metadata.name
