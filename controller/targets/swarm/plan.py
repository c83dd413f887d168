"""The plan for a Docker Swarm: desired apps against this instance's services. Pure.

The same `Plan` and `Change` values as the container plan, so `render` and the JSON of
`trueup diff` are identical: per app at most one change, ``create`` (no service yet),
``update`` (the ``trueup.spec-hash`` label differs, or the update order; field diffs come from
the ``trueup.spec`` label), ``scale`` (only the replica count differs), ``heal`` (the service
runs the desired spec but Swarm still reports a failed rollout: re-applying clears it) or
``delete`` (the app left git; the service ids are in ``Change.remove``). Swarm restarts and
reschedules its own tasks, so a missing or failed task is never a change here. The per-app loop,
prune guards, ``dependsOn`` order and route differences are `controller.planning`'s, as for
containers.

Also here: `service_spec`, which turns one desired app into the `ServiceSpec` Swarm runs, with
the same ownership labels containers get and secretRefs as content-named Swarm secrets; and
`observation`, the Swarm target's `Observation` of a snapshot (task rows, services, rollouts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller import labels as L
from controller.desired.resolve import (
    DesiredApp,
    DesiredState,
    bind_mounts,
    canonical_json,
    healthcheck_spec,
    network_attachments,
)
from controller.errors import PolicyError
from controller.manifests.models import SecretValue
from controller.planning import Change, FieldChange, Plan, PlanOptions, diff_specs, plan_apps
from controller.routes.table import RouteTable
from controller.runtime.base import PortSpec, VolumeMount, volume_name
from controller.runtime.swarm_base import (
    FAILED_ROLLOUT,
    ROLLING,
    TASK_INSTANCE,
    SecretMount,
    ServiceInfo,
    ServiceSpec,
    SwarmSnapshot,
    task_rows,
)
from controller.targets.observed import Observation, ObservedState, Rollout

SECRET_REF = "trueup.secret-ref"
_NAME_MAX = 63


def service_name(instance: str, app: str) -> str:
    """``<instance>-<app>``; shortened with a hash when Swarm's 63-character limit needs it."""
    name = f"{instance}-{app}"
    if len(name) <= _NAME_MAX:
        return name
    short = hashlib.sha256(app.encode()).hexdigest()[:8]
    return f"{instance}-{app[: _NAME_MAX - len(instance) - 10]}-{short}"


def secret_name(instance: str, digest: str) -> str:
    """A Swarm secret's name from the app-scoped, keyed digest of its value (see
    ``secrets.digest``): a rotation is a new name, so the service spec changes and Swarm rolls
    it."""
    return f"trueup-{instance}-{digest.rpartition(':')[2]}"


def registry_image(registry: str | None, image: str) -> str:
    """Where nodes pull a locally built image from (the image itself without a registry)."""
    return f"{registry.rstrip('/')}/{image}" if registry else image


def service_spec(
    want: DesiredApp,
    *,
    instance: str,
    revision: str | None,
    image: str | None = None,
    mounted: Sequence[tuple[str, str]] = (),
    bind_paths: Sequence[str] = (),
) -> ServiceSpec:
    """The Swarm service of ``want``: labels, replicas, env, secrets, limits, health, mounts.

    A named volume is the instance's `volume_name`; only when the running service already
    mounts the volume under its old, unscoped name at the same path (``mounted``: its
    (source, target) pairs) is that name kept, so an upgrade never moves an app to an empty
    volume.

    A secretRef variable ``VAR`` becomes a Swarm secret mounted at ``/run/secrets/VAR``, and
    ``VAR_FILE`` names that file (Swarm has no secret environment variables; the value never
    enters the service spec). Raises `PolicyError` for what Swarm services cannot do.
    """
    spec = want.manifest.spec
    _refuse_unsupported(want)
    env, secrets = _env_and_secrets(want, instance)
    secrets = (*secrets, *_file_secrets(want, instance))
    labels, container_labels = _labels(want, instance, revision)
    check = spec.health_check
    return ServiceSpec(
        name=service_name(instance, want.name),
        image=image or want.image,
        labels=labels,
        container_labels=container_labels,
        replicas=want.replicas,
        command=tuple(spec.command) if spec.command is not None else None,
        entrypoint=tuple(spec.entrypoint) if spec.entrypoint is not None else None,
        env=env,
        working_dir=spec.working_dir,
        user=spec.user,
        ports=tuple(PortSpec(p.container_port, p.protocol, p.host_port) for p in spec.ports),
        healthcheck=healthcheck_spec(spec),
        memory=spec.resources.memory,
        cpus=spec.resources.cpus,
        volumes=_volumes(want, instance, mounted),
        binds=bind_mounts(spec, bind_paths),
        secrets=secrets,
        restart_policy=spec.restart_policy,
        init=spec.init,
        stop_signal=spec.stop_signal,
        stop_grace_period=spec.stop_grace_period,
        cap_add=tuple(spec.cap_add),
        aliases=(want.name,),
        networks=network_attachments(want, instance),
        order=want.strategy,
        monitor=max(1.0, check.interval) if check is not None else 5.0,
        endpoint_mode=spec.swarm.endpoint_mode if spec.swarm is not None else "vip",
    )


def _volumes(
    want: DesiredApp, instance: str, mounted: Sequence[tuple[str, str]]
) -> tuple[VolumeMount, ...]:
    """The instance's named volumes; an old, unscoped name the service mounts is kept; a
    compose project's volume keeps its exact ``<project>_<volume>`` name."""
    return tuple(
        VolumeMount(
            v.volume_name
            or (v.name if (v.name, v.mount_path) in mounted else volume_name(instance, v.name)),
            v.mount_path,
            v.read_only,
        )
        for v in want.manifest.spec.volumes
    )


def _refuse_unsupported(want: DesiredApp) -> None:
    """`PolicyError` for what a Swarm service cannot do."""
    spec = want.manifest.spec
    if spec.privileged:
        raise PolicyError("privileged is not supported by Swarm services")
    if spec.network_mode != "bridge":
        raise PolicyError(f"networkMode {spec.network_mode} is not supported on swarm")
    for i, port in enumerate(spec.ports):
        if port.host_ip is not None:
            raise PolicyError(
                f"spec.ports[{i}].hostIp: not supported on swarm (the routing mesh publishes "
                f"hostPort {port.host_port} on every node's addresses)"
            )


def _env_and_secrets(
    want: DesiredApp, instance: str
) -> tuple[dict[str, str], tuple[SecretMount, ...]]:
    """Plain variables as they are; each secretRef as a Swarm secret file and ``VAR_FILE``."""
    spec = want.manifest.spec
    env = dict(want.file_env)  # spec.envFrom, below spec.env
    env.update({k: v for k, v in spec.env.items() if isinstance(v, str)})
    secrets: list[SecretMount] = []
    for var, value in sorted(spec.env.items()):
        if not isinstance(value, SecretValue):
            continue
        stored = want.spec["env"][var]
        secrets.append(
            SecretMount(
                name=secret_name(instance, str(stored["digest"])),
                file=var,
                data=want.secret_env[var],
                labels={
                    L.INSTANCE: instance,
                    L.APP: want.name,
                    SECRET_REF: str(stored["secretRef"]),
                },
            )
        )
        env[f"{var}_FILE"] = f"/run/secrets/{var}"
    return env, tuple(secrets)


def _file_secrets(want: DesiredApp, instance: str) -> tuple[SecretMount, ...]:
    """Each ``spec.files`` file as a content-named Swarm secret at its absolute path, with its
    mode and owner: a secret file named by its keyed digest, a file from git by the sha256 of
    app, path and content (git holds it anyway). A changed file is a new name, so the service
    rolls; unused ones go with the instance's other unused secrets."""
    keyed = {
        str(item["path"]): str(item["digest"])
        for item in want.spec.get("files", ())
        if "source" not in item
    }
    out = []
    for f in want.file_contents:
        digest = keyed.get(f.path)
        if digest is None:
            material = b"\0".join((want.name.encode(), f.path.encode(), f.data))
            digest = hashlib.sha256(material).hexdigest()[:16]
        labels = {L.INSTANCE: instance, L.APP: want.name, SECRET_REF: f"file:{f.path}"}
        out.append(
            SecretMount(secret_name(instance, digest), f.path, f.data, labels, f.mode, f.uid, f.gid)
        )
    return tuple(out)


def _labels(
    want: DesiredApp, instance: str, revision: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The service's ownership labels, and the labels its task containers get."""
    user_labels = {f"{L.USER_PREFIX}{k}": v for k, v in want.manifest.metadata.labels.items()}
    labels = {
        **user_labels,
        L.INSTANCE: instance,
        L.APP: want.name,
        L.SPEC_HASH: want.spec_hash,
        L.REVISION: revision or "worktree",
        L.SPEC: canonical_json(want.spec),
    }
    return labels, {**user_labels, TASK_INSTANCE: instance, L.APP: want.name}


@dataclass(frozen=True, eq=False)
class ServiceObservation(Observation):
    """A swarm seen through its manager: the task rows (`Observation.rows`), the services
    they belong to, and Swarm's rollout state of each app (`Observation.rollouts`)."""

    services: tuple[ServiceInfo, ...] = ()
    instance: str = ""

    def plan(self, desired: DesiredState, options: PlanOptions) -> Plan:
        return service_plan(desired, self.services, self.state, self.instance, options)


def observation(snapshot: SwarmSnapshot, *, instance: str) -> ServiceObservation:
    """What the two engine calls of a `SwarmSnapshot` say, as the Swarm target's observation:
    Swarm's own rollout of a service leads its app's health (a failed one: Degraded; one in
    progress: Progressing)."""
    rollouts: dict[str, Rollout] = {}
    for service in snapshot.services:
        state = service.update_state
        if not service.app or not state:
            continue
        if state in FAILED_ROLLOUT:
            message = service.update_message or "update failed"
            rollouts[service.app] = Rollout(True, f"swarm update {state}: {message}")
        elif state in ROLLING:
            rollouts[service.app] = Rollout(False, f"swarm update {state}")
    return ServiceObservation(
        tuple(task_rows(snapshot)),
        rollouts,
        services=snapshot.services,
        instance=instance,
    )


def make_swarm_plan(
    desired: DesiredState,
    services: Sequence[ServiceInfo],
    tasks: ObservedState,
    *,
    instance: str,
    prune: bool = True,
    allow_empty: bool = False,
    current_routes: RouteTable | None = None,
) -> Plan:
    """`service_plan` with its options spelt out."""
    options = PlanOptions(prune, allow_empty, current_routes)
    return service_plan(desired, services, tasks, instance, options)


def service_plan(
    desired: DesiredState,
    services: Sequence[ServiceInfo],
    tasks: ObservedState,
    instance: str,
    options: PlanOptions,
) -> Plan:
    """Compare ``desired`` with the instance's ``services``; ``tasks`` (the task view) gives
    the route table's upstreams. The per-app loop, guards and order are
    `controller.planning.plan_apps`'s."""
    by_app: dict[str, list[ServiceInfo]] = {}
    for service in services:
        if service.app:
            by_app.setdefault(service.app, []).append(service)

    def diff(want: DesiredApp, have: list[ServiceInfo] | None) -> Change | None:
        return _diff_service(want, have or [], service_name(instance, want.name))

    return plan_apps(desired, by_app, diff=diff, delete=_delete, routes_from=tasks, options=options)


def _delete(app: str, have: list[ServiceInfo]) -> Change:
    names = ", ".join(s.name for s in have)
    return Change(
        app=app,
        action="delete",
        reasons=(f"not in git: removing service {names}, keeping volumes",),
        remove=tuple(s.id for s in have),
    )


def stored_spec(service: ServiceInfo) -> dict[str, Any]:
    """The resolved spec the service was last applied from (its ``trueup.spec`` label)."""
    try:
        value = json.loads(service.labels.get(L.SPEC, ""))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _diff_service(want: DesiredApp, have: list[ServiceInfo], expected: str) -> Change | None:
    current = next((s for s in have if s.name == expected), None)
    extras = tuple(s.id for s in have if s is not current)
    dupes = (f"{len(extras)} service(s) of this app under another name",) if extras else ()
    if current is None:
        if want.replicas == 0 and not extras:
            return None
        return Change(
            app=want.name,
            action="create",
            reasons=(f"new app: service with {want.replicas} replica(s)", *dupes),
            remove=extras,
            build=want.build,
            depends_on=want.depends_on,
        )
    reasons: list[str] = []
    fields: list[FieldChange] = []
    update = heal = False
    if current.spec_hash != want.spec_hash:
        update = True
        reasons.append("spec changed: Swarm rolls the service's tasks")
        fields = [
            f for f in diff_specs(stored_spec(current), want.spec) if f.path != "spec.replicas"
        ]
    if current.update_order is not None and current.update_order != want.strategy:
        update = True
        reasons.append(f"update order {current.update_order} → {want.strategy}")
        fields.append(FieldChange("spec.update.strategy", current.update_order, want.strategy))
    if current.replicas != want.replicas:
        verb = "up" if want.replicas > current.replicas else "down"
        reasons.append(f"scale {verb}: {current.replicas} → {want.replicas} replica(s)")
        fields.append(FieldChange("spec.replicas", current.replicas, want.replicas))
    if not reasons and current.update_state in FAILED_ROLLOUT:
        # runs the desired spec, yet Swarm still reports the failed rollout of another one
        # (git was reverted to it): an update without task changes clears that state
        reasons.append(f"Swarm reports a failed rollout ({current.update_state}): clear it")
        heal = True
    if not reasons and not extras:
        return None
    return Change(
        app=want.name,
        action="update" if update or (extras and not reasons) else "heal" if heal else "scale",
        reasons=(*reasons, *dupes),
        fields=tuple(sorted(fields, key=lambda f: f.path)),
        remove=extras,
        build=want.build if update else None,
        depends_on=want.depends_on,
    )
