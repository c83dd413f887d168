"""What `SwarmRuntime` sends to create or update a service: the service body, built pure.

`service_body` turns a `ServiceSpec` into the JSON body of ``POST /services/create`` (and,
without ``Name``, what ``POST /services/{id}/update`` gets): no I/O and no docker import. It is
what the docker SDK's ``docker.types`` built for the same arguments, key for key, so the
engine sees the request it always saw; ``tests/runtime/test_swarm_requests.py`` checks that
against the SDK. Deterministic (environment sorted, fixed update and rollback policies), so an
unchanged spec never makes Swarm roll its tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller import labels as L
from controller.runtime.base import HealthCheckSpec
from controller.runtime.swarm_base import ServiceSpec

NS = 1_000_000_000
RESTART = {"always": "any", "on-failure": "on-failure", "never": "none"}
RESTART_DELAY = 5 * NS
"""How long Swarm waits before it restarts a task that exited."""


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * NS)


def service_body(
    spec: ServiceSpec, *, instance: str, network: str, secret_ids: Mapping[str, str]
) -> dict[str, Any]:
    """The create body of ``spec``'s service on the overlay ``network``. ``spec.binds``' host
    paths are used as given (the caller resolved them); ``secret_ids`` maps each secret's name
    to its engine id."""
    monitor = _ns(spec.monitor)
    return {
        "Name": spec.name,
        "Labels": dict(spec.labels),
        "TaskTemplate": task_template(
            spec, instance=instance, network=network, secret_ids=secret_ids
        ),
        "Mode": {"replicated": {"Replicas": spec.replicas}},
        "UpdateConfig": _rollout("rollback", monitor, spec.order, max_failure_ratio=0),
        "RollbackConfig": _rollout("pause", monitor, spec.order),
        "EndpointSpec": endpoint_spec(spec),
    }


def task_template(
    spec: ServiceSpec, *, instance: str, network: str, secret_ids: Mapping[str, str]
) -> dict[str, Any]:
    """What each task runs: its container, resources, restart policy and network."""
    template: dict[str, Any] = {
        "ContainerSpec": container_spec(spec, instance=instance, secret_ids=secret_ids)
    }
    limits = resources(spec) if spec.memory or spec.cpus else {}
    if limits:
        template["Resources"] = limits
    template["RestartPolicy"] = {
        "Condition": RESTART[spec.restart_policy],
        "Delay": RESTART_DELAY,
        "MaxAttempts": 0,
        "Window": 0,
    }
    template["Networks"] = [{"Target": network, "Aliases": list(spec.aliases), "DriverOpts": None}]
    if spec.networks:  # the app's own networks instead of the instance's
        template["Networks"] = [
            {"Target": n.name, "Aliases": list(n.aliases), "DriverOpts": None}
            for n in spec.networks
        ]
    return template


def container_spec(
    spec: ServiceSpec, *, instance: str, secret_ids: Mapping[str, str]
) -> dict[str, Any]:
    """The task's container: the image's entrypoint is Swarm's ``Command`` and its command
    Swarm's ``Args``; keys left unset are left out (``Command``/``Args`` are always there)."""
    body: dict[str, Any] = {
        "Image": spec.image,
        "Command": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "Args": list(spec.command) if spec.command is not None else None,
    }
    optional: dict[str, Any] = {
        "Env": [f"{k}={v}" for k, v in sorted(spec.env.items())] or None,
        "Dir": spec.working_dir,
        "User": spec.user,
        "StopSignal": spec.stop_signal,
        "StopGracePeriod": _ns(spec.stop_grace_period),
        "Labels": dict(spec.container_labels),
        "Mounts": mounts(spec, instance=instance) or None,
        "Secrets": secrets(spec, secret_ids) or None,
        "Healthcheck": healthcheck(spec.healthcheck) if spec.healthcheck is not None else None,
        "Init": True if spec.init else None,
        "CapabilityAdd": list(spec.cap_add) or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def mounts(spec: ServiceSpec, *, instance: str) -> list[dict[str, Any]]:
    """Named volumes (labelled for ``instance``: the label reaches the volume a node creates
    for the first task that mounts it), then host binds."""
    volumes = [
        {
            "Target": v.mount_path,
            "Source": v.name,
            "Type": "volume",
            "ReadOnly": v.read_only,
            "VolumeOptions": {"Labels": {L.INSTANCE: instance}},
        }
        for v in spec.volumes
    ]
    binds = [
        {"Target": b.mount_path, "Source": b.host_path, "Type": "bind", "ReadOnly": b.read_only}
        for b in spec.binds
    ]
    return volumes + binds


def secrets(spec: ServiceSpec, secret_ids: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each secret as ``/run/secrets/<file>`` (its name when no file is given; ``file`` itself
    when absolute), with its owner and mode (root, 0444 unless the mount says otherwise)."""
    return [
        {
            "SecretName": s.name,
            "SecretID": secret_ids[s.name],
            "File": {
                "Name": s.file or s.name,
                "UID": str(s.uid),
                "GID": str(s.gid),
                "Mode": s.mode,
            },
        }
        for s in spec.secrets
    ]


def healthcheck(hc: HealthCheckSpec) -> dict[str, Any]:
    """A health check with its durations in nanoseconds."""
    return {
        "Test": list(hc.test),
        "Interval": _ns(hc.interval),
        "Timeout": _ns(hc.timeout),
        "Retries": hc.retries,
        "StartPeriod": _ns(hc.start_period),
    }


def resources(spec: ServiceSpec) -> dict[str, Any]:
    """The task's limits: CPUs in billionths of a core, memory in bytes."""
    limits: dict[str, Any] = {}
    if spec.cpus:
        limits["NanoCPUs"] = int(spec.cpus * NS)
    if spec.memory is not None:
        limits["MemoryBytes"] = spec.memory
    return {"Limits": limits} if limits else {}


def endpoint_spec(spec: ServiceSpec) -> dict[str, Any]:
    """A virtual IP, and each host port published on the routing mesh (every node); in
    ``dnsrr`` mode (no virtual IP, no routing mesh) host ports are published in ``host`` mode,
    on the nodes that run a task."""
    published = {p.host_port: p for p in spec.ports if p.host_port is not None}
    mode = spec.endpoint_mode
    ports = [
        {
            "Protocol": p.protocol,
            "PublishedPort": host_port,
            "TargetPort": p.container_port,
            "PublishMode": "ingress" if mode == "vip" else "host",
        }
        for host_port, p in published.items()
    ]
    return {"Ports": ports, "Mode": mode} if ports else {"Mode": mode}


def _rollout(
    failure_action: str, monitor: int | None, order: str, *, max_failure_ratio: int | None = None
) -> dict[str, Any]:
    """An update (or rollback) policy: one task at a time, no delay, ``order`` (start-first
    or stop-first), ``failure_action`` when a new task fails within ``monitor``."""
    config: dict[str, Any] = {"Parallelism": 1, "Delay": 0, "FailureAction": failure_action}
    if monitor is not None:
        config["Monitor"] = monitor
    if max_failure_ratio is not None:
        config["MaxFailureRatio"] = max_failure_ratio
    config["Order"] = order
    return config
