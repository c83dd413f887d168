"""Desired state: manifests at a revision + secrets + build-context ids → one resolved spec per app.

Pure: no I/O, no clock. The resolved spec is the app's container-relevant manifest with the
image resolved (a build becomes its content-addressed tag) and secret values replaced by
digests. Its canonical JSON is stored on every container (``trueup.spec``) and its sha256 is
the ``trueup.spec-hash`` label, so a later pass, even after a restart, can tell what changed.
``replicas`` is kept in the stored spec for diffs but left out of the hash: scaling never rolls.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from controller import labels as L
from controller.desired.envfiles import EnvFile, resolve_env_from
from controller.desired.files import SourceDigest, resolve_files
from controller.desired.policy import Policy, adopted_volumes, allowed_root, violations
from controller.desired.secrets import SecretStore
from controller.errors import PolicyError, SourceError, TrueupError
from controller.runtime.archive import FileContent
from controller.runtime.base import (
    BindMount,
    ContainerSpec,
    HealthCheckSpec,
    NetworkAttachment,
    PortSpec,
    RestartPolicy,
    VolumeMount,
    app_network_name,
    volume_name,
)

if TYPE_CHECKING:  # the models load only where manifests are parsed (see desired_cache)
    from controller.manifests.loader import LoadResult
    from controller.manifests.models import App, Build, Spec

# Fields of the manifest spec that do not shape a container; they never enter the hash.
_NOT_CONTAINER_FIELDS = (
    "build",
    "image",
    "replicas",
    "routes",
    "dependsOn",
    "update",
    "suspend",
    "files",
    "reload",
    "envFrom",
)
_UNHASHED = ("replicas",)


@dataclass(frozen=True)
class BuildPlan:
    """How to make a build app's image: the context (relative to the deployment root) and tag."""

    context: str
    context_id: str
    dockerfile: str
    args: Mapping[str, str]
    target: str | None
    tag: str


@dataclass(frozen=True)
class WantedRoute:
    """A route an app asks for: ``host`` + ``path`` to its container port named ``port_name``."""

    host: str
    path: str
    port_name: str
    port: int


@dataclass(frozen=True)
class DesiredApp:
    """One app as it should run.

    Planning needs only the plain fields; applying also reads ``manifest``, the validated
    model. A desired state restored from the cache (``desired_cache``) carries the manifest as
    JSON and validates it on first use, so a pass with nothing to apply never loads pydantic.
    """

    name: str
    spec: dict[str, Any]
    spec_hash: str
    replicas: int
    image: str
    build: BuildPlan | None
    depends_on: tuple[str, ...]
    strategy: Literal["start-first", "stop-first"]
    suspend: bool
    file: str
    restart_policy: RestartPolicy
    routes: tuple[WantedRoute, ...]
    manifest_source: App | Mapping[str, Any] = field(repr=False, compare=False)
    """The validated ``App``, or its JSON (``App.model_dump(mode="json", by_alias=True)``)."""
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    secret_files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    """Secret ``spec.files`` contents by container path (never stored, re-read on reuse)."""
    file_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The variables of ``spec.envFrom`` files (never stored, re-read on reuse)."""
    file_contents: tuple[FileContent, ...] = field(default=(), repr=False, compare=False)
    """Every ``spec.files`` file with its bytes, filled in by the apply stage (never cached)."""
    adopt_volumes: frozenset[str] = field(default=frozenset(), compare=False)
    """The ``volumeName`` volumes the policy (``allow_volumes``) lets be mounted when they
    exist and are not this instance's."""

    @property
    def short_hash(self) -> str:
        return self.spec_hash[:8]

    @cached_property
    def manifest(self) -> App:
        """The app's validated manifest model."""
        if isinstance(self.manifest_source, Mapping):
            from controller.manifests.models import App

            return App.model_validate(self.manifest_source)
        return self.manifest_source


@dataclass
class DesiredState:
    """Every app that should run at ``revision``, plus apps that could not be resolved."""

    revision: str | None
    apps: dict[str, DesiredApp] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Apps whose manifest is valid but cannot be resolved (missing secret, policy): left as is."""
    invalid: set[str] = field(default_factory=set)
    """Apps whose manifest failed to load: left as is."""
    load_failed: bool = False
    """True when any manifest file (or a SOPS file an app uses) failed to load: pruning is
    suspended for the pass."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace: the form hashes and labels are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of ``spec`` without the unhashed fields."""
    hashed = {k: v for k, v in spec.items() if k not in _UNHASHED}
    return hashlib.sha256(canonical_json(hashed).encode()).hexdigest()


def build_tag(app: str, build: Build, context_id: str) -> str:
    """A content-addressed tag: same context tree and build options, same tag, no rebuild."""
    options = canonical_json(
        {"dockerfile": build.dockerfile, "args": dict(build.args), "target": build.target}
    )
    opt = hashlib.sha256(options.encode()).hexdigest()[:8]
    return f"trueup/{app}:{context_id[:12]}-{opt}"


def resolve(
    loaded: LoadResult,
    *,
    revision: str | None,
    secrets: SecretStore,
    context_ids: Mapping[str, str],
    policy: Policy,
    file_sources: Mapping[str, SourceDigest | str] | None = None,
    env_files: Mapping[str, EnvFile | str] | None = None,
) -> DesiredState:
    """Resolve every loaded app; an app that fails to resolve is recorded, not raised."""
    state = DesiredState(
        revision=revision, invalid=set(loaded.invalid_apps), load_failed=bool(loaded.failed_files)
    )
    for name in sorted(loaded.apps):
        item = loaded.apps[name]
        try:
            state.apps[name] = resolve_app(
                item.app,
                file=item.file,
                secrets=secrets,
                context_ids=context_ids,
                policy=policy,
                file_sources=file_sources or {},
                env_files=env_files or {},
            )
        except TrueupError as exc:
            state.errors[name] = str(exc)
    if secrets.sops is not None and any(secrets.sops.checked().values()):
        state.load_failed = True  # a SOPS file that failed is a file that failed to load
    return state


def resolve_app(
    app: App,
    *,
    file: str,
    secrets: SecretStore,
    context_ids: Mapping[str, str],
    policy: Policy,
    file_sources: Mapping[str, SourceDigest | str] | None = None,
    env_files: Mapping[str, EnvFile | str] | None = None,
) -> DesiredApp:
    """Resolve one app; raises ``SecretError`` or ``PolicyError`` for this app alone."""
    from controller.manifests.models import SecretValue

    spec = app.spec
    problems = violations(spec, policy)
    if problems:
        raise PolicyError("; ".join(problems))
    build_plan: BuildPlan | None = None
    if spec.build is not None:
        context_id = context_ids.get(spec.build.context)
        if context_id is None:
            raise SourceError(f"build context {spec.build.context!r} not found at this revision")
        tag = build_tag(app.name, spec.build, context_id)
        build_plan = BuildPlan(
            context=spec.build.context,
            context_id=context_id,
            dockerfile=spec.build.dockerfile,
            args=dict(spec.build.args),
            target=spec.build.target,
            tag=tag,
        )
        image = tag
    else:
        assert spec.image is not None  # the model guarantees image XOR build
        image = spec.image
    secret_env = {
        var: secrets.get(v.secret_ref.secret, v.secret_ref.key)
        for var, v in spec.env.items()
        if isinstance(v, SecretValue)
    }
    resolved = _resolved_spec(app, image, secret_env, secrets)
    files, secret_files = resolve_files(app, file_sources or {}, secrets)
    if files:  # absent otherwise: an app without files keeps the hash it always had
        resolved["files"] = files
    env_from, file_env = resolve_env_from(app, env_files or {}, secrets)
    if env_from:  # likewise
        resolved["envFrom"] = env_from
    ports = {p.name: p.container_port for p in spec.ports}
    return DesiredApp(
        name=app.name,
        spec=resolved,
        spec_hash=spec_hash(resolved),
        replicas=spec.replicas,
        image=image,
        build=build_plan,
        depends_on=tuple(spec.depends_on),
        strategy=spec.effective_strategy(),
        suspend=spec.suspend,
        file=file,
        restart_policy=spec.restart_policy,
        routes=tuple(
            WantedRoute(r.host, r.path, r.port, ports[r.port])
            for r in spec.routes
            if r.port in ports
        ),
        manifest_source=app,
        secret_env=secret_env,
        secret_files=secret_files,
        file_env=file_env,
        adopt_volumes=adopted_volumes(spec, policy),
    )


def _resolved_spec(
    app: App, image: str, secret_env: Mapping[str, str], secrets: SecretStore
) -> dict[str, Any]:
    from controller.manifests.models import SecretValue

    dumped = app.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    resolved = {k: v for k, v in dumped.items() if k not in _NOT_CONTAINER_FIELDS}
    env: dict[str, Any] = {}
    for var, value in app.spec.env.items():
        if isinstance(value, SecretValue):
            ref = value.secret_ref
            env[var] = {
                "secretRef": f"{ref.secret}/{ref.key}",
                "digest": secrets.digest(app.name, var, secret_env[var]),
            }  # read back by `stored_secret`
        else:
            env[var] = value
    resolved["env"] = env
    resolved["image"] = image
    resolved["labels"] = dict(app.metadata.labels)
    resolved["replicas"] = app.spec.replicas
    return resolved


def stored_secret(value: Any) -> tuple[str, str, str] | None:
    """``(secret, key, digest)`` of a resolved spec's env value that reads a secret (as
    `_resolved_spec` writes it), or None for a plain value."""
    if not (isinstance(value, dict) and "secretRef" in value and "digest" in value):
        return None
    secret, _, key = str(value["secretRef"]).rpartition("/")
    return secret, key, str(value["digest"])


def container_name(instance: str, app: str, replica: int, short_hash: str) -> str:
    """Predictable names: ``<instance>-<app>-<replica>-<short spec hash>``."""
    return f"{instance}-{app}-{replica}-{short_hash}"


def container_spec(
    desired: DesiredApp,
    *,
    replica: int,
    instance: str,
    revision: str | None,
    bind_paths: Sequence[str] = (),
) -> ContainerSpec:
    """The runtime's view of one replica of ``desired``, with every ownership label.

    Each bind carries the allowed path of ``bind_paths`` (the policy's) it lies under, or its
    own path when none: the runtime refuses it when its symlinks lead out of that path."""
    spec = desired.manifest.spec
    env = dict(desired.file_env)
    env.update({k: v for k, v in spec.env.items() if isinstance(v, str)})
    env.update(desired.secret_env)
    labels = {f"{L.USER_PREFIX}{k}": v for k, v in desired.manifest.metadata.labels.items()}
    labels.update(
        {
            L.INSTANCE: instance,
            L.APP: desired.name,
            L.REPLICA: str(replica),
            L.SPEC_HASH: desired.spec_hash,
            L.REVISION: revision or "worktree",
            L.SPEC: canonical_json(desired.spec),
        }
    )
    return ContainerSpec(
        name=container_name(instance, desired.name, replica, desired.short_hash),
        image=desired.image,
        command=tuple(spec.command) if spec.command is not None else None,
        entrypoint=tuple(spec.entrypoint) if spec.entrypoint is not None else None,
        env=env,
        working_dir=spec.working_dir,
        user=spec.user,
        labels=labels,
        ports=tuple(
            PortSpec(p.container_port, p.protocol, p.host_port, p.host_ip) for p in spec.ports
        ),
        healthcheck=healthcheck_spec(spec),
        memory=spec.resources.memory,
        cpus=spec.resources.cpus,
        volumes=tuple(
            VolumeMount(
                v.volume_name,
                v.mount_path,
                v.read_only,
                adopt=v.volume_name in desired.adopt_volumes,
            )
            if v.volume_name is not None
            else VolumeMount(
                volume_name(instance, v.name), v.mount_path, v.read_only, legacy=v.name
            )
            for v in spec.volumes
        ),
        binds=bind_mounts(spec, bind_paths),
        restart_policy=spec.restart_policy,
        init=spec.init,
        stop_signal=spec.stop_signal,
        stop_grace_period=spec.stop_grace_period,
        aliases=(desired.name,),
        privileged=spec.privileged,
        network_mode=None if spec.network_mode == "bridge" else spec.network_mode,
        cap_add=tuple(spec.cap_add),
        files=desired.file_contents,
        networks=network_attachments(desired, instance),
    )


def network_attachments(desired: DesiredApp, instance: str) -> tuple[NetworkAttachment, ...]:
    """The app networks of ``desired`` (``spec.networks``) by engine name, each with its
    aliases (default: the app name); empty for an app on the instance network."""
    return tuple(
        NetworkAttachment(app_network_name(instance, n.name), tuple(n.aliases or [desired.name]))
        for n in desired.manifest.spec.networks or ()
    )


def app_networks(desired: DesiredState, instance: str) -> frozenset[str]:
    """The engine names of every app network the apps of ``desired`` join."""
    return frozenset(
        app_network_name(instance, n.name)
        for app in desired.apps.values()
        for n in app.manifest.spec.networks or ()
    )


def bind_mounts(spec: Spec, bind_paths: Sequence[str]) -> tuple[BindMount, ...]:
    """``spec``'s binds, each with the allowed path it must stay within once resolved."""
    return tuple(
        BindMount(
            b.host_path,
            b.mount_path,
            b.read_only,
            within=allowed_root(b.host_path, bind_paths) or b.host_path,
        )
        for b in spec.binds
    )


def healthcheck_spec(spec: Spec) -> HealthCheckSpec | None:
    """The engine-side health check: http via wget (or curl), tcp via nc, exec as given."""
    check = spec.health_check
    if check is None:
        return None
    ports = {p.name: p.container_port for p in spec.ports}
    test: tuple[str, ...]
    # The engine enforces the timeout; client-side timeout flags are avoided on purpose (some
    # static busybox builds crash on `wget -T`).
    if check.http is not None:
        port = check.http.port if isinstance(check.http.port, int) else ports[check.http.port]
        # one shell word: a path's '&', ';' or '$' must reach wget as part of the URL
        url = shlex.quote(f"http://127.0.0.1:{port}{check.http.path}")
        test = ("CMD-SHELL", f"wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}")
    elif check.tcp is not None:
        port = check.tcp.port if isinstance(check.tcp.port, int) else ports[check.tcp.port]
        test = (
            "CMD-SHELL",
            f"nc -z 127.0.0.1 {port} 2>/dev/null || nc 127.0.0.1 {port} </dev/null >/dev/null",
        )
    else:
        assert check.exec is not None
        test = ("CMD", *check.exec)
    return HealthCheckSpec(
        test=test,
        interval=check.interval,
        timeout=check.timeout,
        retries=check.retries,
        start_period=check.start_period,
    )
