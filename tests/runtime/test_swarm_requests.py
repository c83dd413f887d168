"""The service body is built pure, and it is the request the docker SDK's ``docker.types``
built for the same service: spec in, body out, no engine."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import docker
import docker.types
import pytest

from controller import labels as L
from controller.runtime import BindMount, HealthCheckSpec, PortSpec, VolumeMount
from controller.runtime.swarm_base import SecretMount, ServiceSpec
from controller.runtime.swarm_requests import (
    container_spec,
    endpoint_spec,
    service_body,
    task_template,
)

RICH = ServiceSpec(
    name="t-web",
    image="registry:5000/team/web:1.2",
    labels={L.APP: "web", L.INSTANCE: "t"},
    container_labels={"trueup.swarm.instance": "t", L.APP: "web"},
    replicas=3,
    command=("serve", "--port", "8080"),
    entrypoint=("/bin/entry",),
    env={"ZED": "last", "ALPHA": "first", "EMPTY": ""},
    working_dir="/srv",
    user="1000:1000",
    ports=(
        PortSpec(container_port=8080, host_port=18080),
        PortSpec(container_port=9090, protocol="udp", host_port=19090),
        PortSpec(container_port=7070),
    ),
    healthcheck=HealthCheckSpec(
        test=("CMD", "true"), interval=2.5, timeout=1.0, retries=4, start_period=3.0
    ),
    memory=64 * 1024 * 1024,
    cpus=0.5,
    volumes=(VolumeMount(name="trueup-t_data", mount_path="/data", read_only=True),),
    binds=(BindMount(host_path="/srv/config", mount_path="/config", read_only=True),),
    secrets=(
        SecretMount(name="t-db-1a2b", file="db_password", data="s3cret"),
        SecretMount(name="t-api-3c4d", file="", data="x"),
    ),
    restart_policy="on-failure",
    init=True,
    stop_signal="SIGINT",
    stop_grace_period=2.5,
    cap_add=("NET_ADMIN",),
    aliases=("web", "www"),
    order="stop-first",
    monitor=7.5,
)
PLAIN = ServiceSpec(name="t-job", image="busybox:1.36", labels={}, container_labels={}, replicas=1)
SCALED_TO_ZERO = ServiceSpec(
    name="t-idle",
    image="busybox:1.36",
    labels={L.APP: "idle"},
    container_labels={},
    replicas=0,
    memory=0,
    restart_policy="never",
)
MEMORY_ONLY = ServiceSpec(
    name="t-mem", image="busybox:1.36", labels={}, container_labels={}, replicas=1, memory=1024
)
SECRET_IDS = {"t-db-1a2b": "sid-db", "t-api-3c4d": "sid-api"}


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1_000_000_000)


def sdk_service_body(spec: ServiceSpec, network: str, instance: str) -> Any:
    """The create body the adapter sent through ``docker.types`` before the pure builder: the
    same arguments, assembled and None-dropped as the SDK's ``create_service``/``_post_json``."""
    types = docker.types
    restart = {"always": "any", "on-failure": "on-failure", "never": "none"}
    mounts = [
        types.Mount(
            v.mount_path,
            v.name,
            type="volume",
            read_only=v.read_only,
            labels={L.INSTANCE: instance},
        )
        for v in spec.volumes
    ] + [
        types.Mount(b.mount_path, b.host_path, type="bind", read_only=b.read_only)
        for b in spec.binds
    ]
    healthcheck = None
    if spec.healthcheck is not None:
        hc = spec.healthcheck
        healthcheck = types.Healthcheck(
            test=list(hc.test),
            interval=_ns(hc.interval),
            timeout=_ns(hc.timeout),
            retries=hc.retries,
            start_period=_ns(hc.start_period),
        )
    secrets = [
        types.SecretReference(
            SECRET_IDS[s.name], s.name, filename=s.file, uid="0", gid="0", mode=0o444
        )
        for s in spec.secrets
    ]
    container = types.ContainerSpec(
        spec.image,
        command=list(spec.entrypoint) if spec.entrypoint is not None else None,
        args=list(spec.command) if spec.command is not None else None,
        env=[f"{k}={v}" for k, v in sorted(spec.env.items())] or None,
        workdir=spec.working_dir,
        user=spec.user,
        labels=dict(spec.container_labels),
        mounts=mounts or None,
        stop_grace_period=_ns(spec.stop_grace_period),
        secrets=secrets or None,
        stop_signal=spec.stop_signal,
        healthcheck=healthcheck,
        init=True if spec.init else None,
        cap_add=list(spec.cap_add) or None,
    )
    resources = None
    if spec.memory or spec.cpus:
        resources = types.Resources(
            cpu_limit=int(spec.cpus * 1_000_000_000) if spec.cpus else None,
            mem_limit=spec.memory,
        )
    template = types.TaskTemplate(
        container,
        resources=resources,
        restart_policy=types.RestartPolicy(
            condition=restart[spec.restart_policy], delay=5 * 1_000_000_000
        ),
        networks=[types.NetworkAttachmentConfig(network, aliases=list(spec.aliases))],
    )
    published = {
        p.host_port: (p.container_port, p.protocol, "ingress")
        for p in spec.ports
        if p.host_port is not None
    }
    monitor = _ns(spec.monitor)
    data = {
        "Name": spec.name,
        "Labels": dict(spec.labels),
        "TaskTemplate": template,
        "Mode": types.ServiceMode("replicated", replicas=spec.replicas),
        "Networks": None,
        "EndpointSpec": types.EndpointSpec(mode="vip", ports=published or None),
        "UpdateConfig": types.UpdateConfig(
            parallelism=1,
            delay=0,
            failure_action="rollback",
            monitor=monitor,
            max_failure_ratio=0,
            order=spec.order,
        ),
        "RollbackConfig": types.RollbackConfig(
            parallelism=1, delay=0, failure_action="pause", monitor=monitor, order=spec.order
        ),
    }
    return json.loads(json.dumps({k: v for k, v in data.items() if v is not None}))


@pytest.mark.parametrize("spec", [RICH, PLAIN, SCALED_TO_ZERO, MEMORY_ONLY], ids=lambda s: s.name)
def test_service_body_is_the_one_the_sdk_sent(spec: ServiceSpec) -> None:
    """Every key and value of the create request is what ``docker.types`` produced."""
    body = service_body(spec, instance="t", network="trueup-t", secret_ids=SECRET_IDS)
    assert json.loads(json.dumps(body)) == sdk_service_body(spec, "trueup-t", "t")


def test_the_image_entrypoint_is_swarm_command_and_the_command_its_args() -> None:
    """Swarm's ``Command`` replaces the image's entrypoint; ``Args`` its command."""
    body = container_spec(RICH, instance="t", secret_ids=SECRET_IDS)
    assert body["Command"] == ["/bin/entry"]
    assert body["Args"] == ["serve", "--port", "8080"]
    plain = container_spec(PLAIN, instance="t", secret_ids={})
    assert plain == {"Image": "busybox:1.36", "Command": None, "Args": None, "Labels": {}}


def test_environment_is_sorted_so_an_unchanged_spec_never_rolls() -> None:
    """The same variables in another order give the same body."""
    env = container_spec(RICH, instance="t", secret_ids=SECRET_IDS)["Env"]
    assert env == ["ALPHA=first", "EMPTY=", "ZED=last"]


def test_mounts_label_volumes_for_the_instance_and_keep_bind_paths() -> None:
    """A volume carries the instance label for the node that creates it; a bind its path."""
    mounts = container_spec(RICH, instance="t", secret_ids=SECRET_IDS)["Mounts"]
    assert mounts == [
        {
            "Target": "/data",
            "Source": "trueup-t_data",
            "Type": "volume",
            "ReadOnly": True,
            "VolumeOptions": {"Labels": {L.INSTANCE: "t"}},
        },
        {"Target": "/config", "Source": "/srv/config", "Type": "bind", "ReadOnly": True},
    ]


def test_secrets_are_root_owned_read_only_files_named_as_asked() -> None:
    """Each secret is a 0444 file owned by root; without a file name it is the secret's."""
    refs = container_spec(RICH, instance="t", secret_ids=SECRET_IDS)["Secrets"]
    assert refs == [
        {
            "SecretName": "t-db-1a2b",
            "SecretID": "sid-db",
            "File": {"Name": "db_password", "UID": "0", "GID": "0", "Mode": 0o444},
        },
        {
            "SecretName": "t-api-3c4d",
            "SecretID": "sid-api",
            "File": {"Name": "t-api-3c4d", "UID": "0", "GID": "0", "Mode": 0o444},
        },
    ]
    assert "s3cret" not in json.dumps(
        service_body(RICH, instance="t", network="n", secret_ids=SECRET_IDS)
    )


def test_only_host_ports_are_published_on_the_routing_mesh() -> None:
    """Ports with a host port are published (ingress); a plain container port is not."""
    assert endpoint_spec(RICH) == {
        "Ports": [
            {
                "Protocol": "tcp",
                "PublishedPort": 18080,
                "TargetPort": 8080,
                "PublishMode": "ingress",
            },
            {
                "Protocol": "udp",
                "PublishedPort": 19090,
                "TargetPort": 9090,
                "PublishMode": "ingress",
            },
        ],
        "Mode": "vip",
    }
    assert endpoint_spec(PLAIN) == {"Mode": "vip"}


def test_task_template_limits_restarts_and_network() -> None:
    """Limits only when set, Swarm's restart condition, the overlay network with the aliases."""
    template = task_template(RICH, instance="t", network="trueup-t", secret_ids=SECRET_IDS)
    assert template["Resources"] == {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 67108864}}
    assert template["RestartPolicy"] == {
        "Condition": "on-failure",
        "Delay": 5_000_000_000,
        "MaxAttempts": 0,
        "Window": 0,
    }
    assert template["Networks"] == [
        {"Target": "trueup-t", "Aliases": ["web", "www"], "DriverOpts": None}
    ]
    idle = task_template(SCALED_TO_ZERO, instance="t", network="trueup-t", secret_ids={})
    assert "Resources" not in idle  # memory 0 is no limit
    assert idle["RestartPolicy"]["Condition"] == "none"


def test_rollouts_go_one_task_at_a_time_and_roll_back_on_failure() -> None:
    """Updates roll back when a new task fails within the monitor; a rollback pauses."""
    body = service_body(RICH, instance="t", network="n", secret_ids=SECRET_IDS)
    assert body["UpdateConfig"] == {
        "Parallelism": 1,
        "Delay": 0,
        "FailureAction": "rollback",
        "Monitor": 7_500_000_000,
        "MaxFailureRatio": 0,
        "Order": "stop-first",
    }
    assert body["RollbackConfig"] == {
        "Parallelism": 1,
        "Delay": 0,
        "FailureAction": "pause",
        "Monitor": 7_500_000_000,
        "Order": "stop-first",
    }
    assert body["Mode"] == {"replicated": {"Replicas": 3}}
    assert service_body(SCALED_TO_ZERO, instance="t", network="n", secret_ids={})["Mode"] == {
        "replicated": {"Replicas": 0}
    }


def test_dnsrr_has_no_virtual_ip_and_publishes_host_ports_on_the_task_nodes() -> None:
    """``endpointMode: dnsrr``: Swarm's dnsrr mode, and host ports in ``host`` mode (the
    routing mesh needs a virtual IP, which Swarm refuses with dnsrr)."""
    body = endpoint_spec(dataclasses.replace(RICH, endpoint_mode="dnsrr"))
    assert body["Mode"] == "dnsrr"
    assert {p["PublishMode"] for p in body["Ports"]} == {"host"}
    assert endpoint_spec(dataclasses.replace(PLAIN, endpoint_mode="dnsrr")) == {"Mode": "dnsrr"}
