"""What `DockerRuntime` sends the Docker Engine API: request bodies and parameters, built pure.

Values in (trueup's `ContainerSpec`, `BuildRequest`, names), JSON-ready dicts out; no I/O and no
docker import, so each is tested by itself (``tests/runtime/test_docker_requests.py``). The
create body is the one the docker SDK's ``create_container`` sent for the same arguments (keys
it leaves out when unset are left out here too), so the engine sees the request it always saw;
``tests/runtime/test_engine_writes.py`` checks that against the SDK itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from controller import labels as L
from controller.noop.fingerprint import list_query
from controller.runtime.base import BuildRequest, ContainerSpec, HealthCheckSpec, network_name

NS = 1_000_000_000
RESTART = {"always": "always", "on-failure": "on-failure", "never": "no"}
#: Fields the SDK's create_container always sent (detach=False, no terminal).
_ATTACH = {
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "AttachStdin": False,
    "AttachStdout": True,
    "AttachStderr": True,
    "NetworkDisabled": False,
}


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


def managed_network(spec: ContainerSpec, instance: str) -> str | None:
    """The network trueup puts the container on, or None for ``host``/``none``/... modes."""
    if spec.network_mode in (None, "bridge"):
        if spec.networks:
            return spec.networks[0].name
        return spec.network or network_name(instance)
    return None


def create_body(
    spec: ContainerSpec, *, instance: str, ulimits: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The ``POST /containers/create`` body for ``spec`` (volumes and binds as given: the
    caller has named the volumes and resolved the bind paths); ``ulimits`` as
    ``{"Name", "Soft", "Hard"}``, None for the engine's defaults."""
    labels = {**spec.labels, L.INSTANCE: instance}
    network = managed_network(spec, instance)
    body: dict[str, Any] = {
        "Image": spec.image,
        "Cmd": list(spec.command) if spec.command is not None else None,
        "Entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "Env": [f"{k}={v}" for k, v in spec.env.items()] or None,
        "WorkingDir": spec.working_dir,
        "User": spec.user,
        "Labels": labels,
        "ExposedPorts": {f"{p.container_port}/{p.protocol}": {} for p in spec.ports} or None,
        "HostConfig": host_config(spec, network, ulimits),
        "NetworkingConfig": networking_config(spec, network, labels),
        "Healthcheck": healthcheck(spec.healthcheck) if spec.healthcheck is not None else None,
        "StopSignal": spec.stop_signal,
        "StopTimeout": (
            math.ceil(spec.stop_grace_period) if spec.stop_grace_period is not None else None
        ),
        **_ATTACH,
    }
    return {k: v for k, v in body.items() if v is not None}


def host_config(
    spec: ContainerSpec, network: str | None, ulimits: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The create body's ``HostConfig``: network mode and restart policy always, the rest only
    when set (as the SDK's ``create_host_config`` wrote it)."""
    config: dict[str, Any] = {
        "NetworkMode": network or spec.network_mode or "default",
        "RestartPolicy": {"Name": RESTART[spec.restart_policy]},
    }
    optional: dict[str, Any] = {
        "Binds": binds(spec) or None,
        "PortBindings": port_bindings(spec) or None,
        "Init": True if spec.init else None,
        "Memory": spec.memory,
        "NanoCpus": int(spec.cpus * NS) if spec.cpus else None,
        "Privileged": True if spec.privileged else None,
        "CapAdd": list(spec.cap_add) or None,
        "Ulimits": ulimits,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    return config


def binds(spec: ContainerSpec) -> list[str]:
    """Named volumes, then host binds, as ``source:target:ro|rw``."""
    mounts = [(v.name, v.mount_path, v.read_only) for v in spec.volumes]
    mounts += [(b.host_path, b.mount_path, b.read_only) for b in spec.binds]
    return [f"{source}:{target}:{'ro' if ro else 'rw'}" for source, target, ro in mounts]


def port_bindings(spec: ContainerSpec) -> dict[str, list[dict[str, str]]]:
    """``{"8080/tcp": [{"HostIp", "HostPort"}]}`` for each port published on the host."""
    return {
        f"{p.container_port}/{p.protocol}": [
            {"HostIp": p.host_ip or "", "HostPort": str(p.host_port)}
        ]
        for p in spec.ports
        if p.host_port is not None
    }


def networking_config(
    spec: ContainerSpec, network: str | None, labels: Mapping[str, str]
) -> dict[str, Any] | None:
    """The endpoint on the managed ``network``, with the app's DNS aliases (``spec.aliases``,
    else the app name; on an app network its own aliases); None off the managed network."""
    if network is None:
        return None
    aliases = list(spec.aliases) or ([labels[L.APP]] if L.APP in labels else [])
    if spec.networks:
        aliases = list(spec.networks[0].aliases)
    endpoint = {"Aliases": aliases} if aliases else {}
    return {"EndpointsConfig": {network: endpoint}}


def healthcheck(hc: HealthCheckSpec) -> dict[str, Any]:
    """A health check with its durations in nanoseconds."""
    return {
        "Test": list(hc.test),
        "Interval": int(hc.interval * NS),
        "Timeout": int(hc.timeout * NS),
        "Retries": hc.retries,
        "StartPeriod": int(hc.start_period * NS),
    }


def label_filter(instance: str) -> dict[str, str]:
    """The list query for every container of ``instance`` (any state)."""
    return list_query(L.instance_filter(instance))


def image_filter(instance: str, *, dangling: bool = False) -> dict[str, str]:
    """The image list (or prune) query for the images built for ``instance``."""
    filters: dict[str, list[str]] = {"label": [L.image_filter(instance)]}
    if dangling:
        filters["dangling"] = ["true"]
    return {"filters": json.dumps(filters)}


def name_filter(name: str) -> dict[str, str]:
    """The network list query for ``name`` (the engine matches parts of names too)."""
    return {"filters": json.dumps({"name": [name]})}


def network_body(name: str, *, labels: Mapping[str, str], internal: bool = False) -> dict[str, Any]:
    """The ``POST /networks/create`` body of a bridge network (an internal one has no
    outside access)."""
    body: dict[str, Any] = {"Name": name, "Driver": "bridge", "CheckDuplicate": True}
    if internal:
        body["Internal"] = True
    body["Labels"] = dict(labels)
    return body


def app_network_labels(instance: str, name: str) -> dict[str, str]:
    """The labels of the app network ``name`` of ``instance``: what makes it trueup's own."""
    return {L.INSTANCE: instance, L.NETWORK: name}


def app_networks_filter(instance: str) -> dict[str, str]:
    """The network list query for every app network of ``instance``."""
    return {"filters": json.dumps({"label": [L.instance_filter(instance), L.NETWORK]})}


def connect_body(container: str, aliases: tuple[str, ...]) -> dict[str, Any]:
    """The ``POST /networks/{id}/connect`` body: ``container`` answering to ``aliases``."""
    return {"Container": container, "EndpointConfig": {"Aliases": list(aliases)}}


def volume_body(name: str, *, instance: str) -> dict[str, Any]:
    """The ``POST /volumes/create`` body of a volume owned by ``instance``."""
    return {"Name": name, "Labels": {L.INSTANCE: instance}}


def stop_query(grace: int | None) -> dict[str, str] | None:
    """``t``: seconds the engine waits before it kills (None: the container's StopTimeout)."""
    return {"t": str(grace)} if grace is not None else None


def remove_query(*, force: bool) -> dict[str, str]:
    """Remove with the container's anonymous volumes; ``force`` kills a running one first."""
    return {"v": "1", "force": "1" if force else "0"}


def build_kwargs(request: BuildRequest) -> dict[str, Any]:
    """The SDK ``build`` arguments for ``request``, its context aside: a custom (tar)
    context, never pulling a newer base, intermediate containers removed, decoded output."""
    return {
        "custom_context": True,
        "tag": request.tag,
        "dockerfile": request.dockerfile,
        "buildargs": dict(request.args) or None,
        "target": request.target,
        "labels": dict(request.labels) or None,
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
    }


def events_filters(instance: str) -> dict[str, str]:
    """The events filter for the containers of ``instance``."""
    return {"type": "container", "label": L.instance_filter(instance)}
