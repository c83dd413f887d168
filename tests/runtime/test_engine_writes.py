"""The one-shot writes (networks, volumes, create, start, stop, remove, the claim) go over the
engine's unix socket without the docker SDK, send what the SDK sent, and send the same requests
through the SDK's session when the engine is a ``tcp://`` one."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.types import Ulimit

from controller import labels as L
from controller.errors import ContainerNotFound
from controller.runtime import (
    BindMount,
    ContainerSpec,
    HealthCheckSpec,
    PortSpec,
    VolumeMount,
)
from controller.runtime.docker import DockerRuntime
from controller.runtime.podman import ULIMIT, PodmanRuntime
from tests.conftest import BASE_IMAGE
from tests.runtime.conftest import cleanup, docker_url
from tests.runtime.httpcount import CountingProxy

RICH = ContainerSpec(
    name="t-web-0",
    image="registry:5000/team/web:1.2",
    command=("serve", "--port", "8080"),
    entrypoint=("/bin/entry",),
    env={"GREETING": "hi", "EMPTY": ""},
    working_dir="/srv",
    user="1000:1000",
    labels={L.APP: "web", L.REPLICA: "0"},
    ports=(
        PortSpec(container_port=8080, host_port=18080),
        PortSpec(container_port=9090, protocol="udp", host_port=19090, host_ip="127.0.0.1"),
        PortSpec(container_port=7070),
    ),
    healthcheck=HealthCheckSpec(
        test=("CMD", "true"), interval=2.5, timeout=1.0, retries=4, start_period=3.0
    ),
    memory=64 * 1024 * 1024,
    cpus=0.5,
    volumes=(VolumeMount(name="t-data", mount_path="/data"),),
    binds=(BindMount(host_path="/etc/hostname", mount_path="/host", read_only=True),),
    restart_policy="on-failure",
    init=True,
    stop_signal="SIGINT",
    stop_grace_period=2.5,
    aliases=("web", "www"),
    privileged=True,
    cap_add=("NET_ADMIN",),
)
PLAIN = ContainerSpec(name="t-job-0", image=BASE_IMAGE)
HOST = ContainerSpec(name="t-host-0", image=BASE_IMAGE, network_mode="host", command=())
ON_OTHER_NET = ContainerSpec(
    name="t-api-0", image=BASE_IMAGE, network="shared", labels={L.APP: "api"}
)


def sdk_create_body(rt: DockerRuntime, spec: ContainerSpec, ulimits: list[Any] | None) -> Any:
    """The body the adapter sent through the SDK's ``create_container`` before it spoke HTTP
    itself (the same arguments, the same None-dropping as the SDK's ``_post_json``)."""
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    labels = {**spec.labels, L.INSTANCE: rt.instance}
    managed = spec.network_mode in (None, "bridge")
    network = spec.network or f"trueup-{rt.instance}"
    aliases = list(spec.aliases) or ([labels[L.APP]] if L.APP in labels else [])
    binds = [f"{v.name}:{v.mount_path}:{'ro' if v.read_only else 'rw'}" for v in spec.volumes] + [
        f"{b.host_path}:{b.mount_path}:{'ro' if b.read_only else 'rw'}" for b in spec.binds
    ]
    port_bindings: dict[str, Any] = {}
    for p in spec.ports:
        if p.host_port is not None:
            key = f"{p.container_port}/{p.protocol}"
            port_bindings[key] = (p.host_ip, p.host_port) if p.host_ip else p.host_port
    restart = {"always": "always", "on-failure": "on-failure", "never": "no"}
    host_config = api.create_host_config(
        binds=binds or None,
        port_bindings=port_bindings or None,
        restart_policy={"Name": restart[spec.restart_policy]},
        init=True if spec.init else None,
        mem_limit=spec.memory,
        nano_cpus=int(spec.cpus * 1_000_000_000) if spec.cpus else None,
        privileged=spec.privileged,
        cap_add=list(spec.cap_add) or None,
        network_mode=network if managed else spec.network_mode,
        ulimits=ulimits,
    )
    networking_config = (
        api.create_networking_config({network: api.create_endpoint_config(aliases=aliases or None)})
        if managed
        else None
    )
    healthcheck = None
    if spec.healthcheck is not None:
        hc = spec.healthcheck
        healthcheck = {
            "test": list(hc.test),
            "interval": int(hc.interval * 1_000_000_000),
            "timeout": int(hc.timeout * 1_000_000_000),
            "retries": hc.retries,
            "start_period": int(hc.start_period * 1_000_000_000),
        }
    config = api.create_container_config(
        spec.image,
        list(spec.command) if spec.command is not None else None,
        entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
        environment=dict(spec.env) or None,
        working_dir=spec.working_dir,
        user=spec.user,
        labels=labels,
        ports=[(p.container_port, p.protocol) for p in spec.ports] or None,
        host_config=host_config,
        networking_config=networking_config,
        healthcheck=healthcheck,
        stop_signal=spec.stop_signal,
        stop_timeout=(
            math.ceil(spec.stop_grace_period) if spec.stop_grace_period is not None else None
        ),
    )
    api.close()
    return json.loads(json.dumps({k: v for k, v in config.items() if v is not None}))


@pytest.mark.parametrize("spec", [RICH, PLAIN, HOST, ON_OTHER_NET], ids=lambda s: s.name)
@pytest.mark.parametrize("kind", ["docker", "podman"])
def test_create_body_is_the_one_the_sdk_sent(kind: str, spec: ContainerSpec) -> None:
    """The engine gets the create request it always got (Podman's ulimits included)."""
    if kind == "docker":
        rt: DockerRuntime = DockerRuntime("unix:///nonexistent.sock", instance="t")
        ulimits = None
    else:
        rt = PodmanRuntime("unix:///nonexistent.sock", instance="t")
        ulimits = [
            Ulimit(name="nofile", soft=ULIMIT, hard=ULIMIT),
            Ulimit(name="nproc", soft=ULIMIT, hard=ULIMIT),
        ]
    mine = json.loads(json.dumps(rt._create_body(spec)))
    assert mine == sdk_create_body(rt, spec, ulimits)


# Runs in a fresh interpreter so that sys.modules shows what a one-shot `trueup apply` loads.
_WRITES = """
import asyncio, socket, sys
from controller import labels as L
from controller.runtime import ContainerSpec, HealthCheckSpec, PortSpec, VolumeMount
from controller.runtime.docker import DockerRuntime
from controller.runtime.podman import PodmanRuntime

kind, url, instance, volume, image = sys.argv[1:6]

async def main() -> None:
    cls = PodmanRuntime if kind == "podman" else DockerRuntime
    rt = cls(url, instance=instance, timeout=30)
    try:
        assert await rt.claim_instance({"pid": "1"}) is None
        assert await rt.claim_instance({"pid": "2"}) == {"pid": "1"}
        await rt.ensure_network()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        spec = ContainerSpec(
            name=f"{instance}-web-0",
            image=image,
            command=("sleep", "300"),
            env={"GREETING": "hi"},
            labels={L.APP: "web", L.REPLICA: "0"},
            ports=(PortSpec(container_port=8080, host_port=port, host_ip="127.0.0.1"),),
            healthcheck=HealthCheckSpec(test=("CMD", "true"), interval=1, timeout=1),
            memory=64 * 1024 * 1024,
            init=True,
            volumes=(VolumeMount(name=volume, mount_path="/data"),),
            stop_grace_period=1,
        )
        cid = await rt.create(spec)
        await rt.start(cid)
        assert (await rt.inspect(cid)).state == "running"
        await rt.stop(cid, grace_period=1)
        assert (await rt.inspect(cid)).state == "exited"
        await rt.start(cid)
        await rt.stop(cid, grace_period=1, signal="SIGTERM")
        assert (await rt.inspect(cid)).state == "exited"
        await rt.remove(cid)
        await rt.release_instance()
    finally:
        await rt.close()

asyncio.run(main())
print(sorted(m for m in ("docker", "requests", "urllib3") if m in sys.modules))
"""


def _engine_url(request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "docker":
        request.getfixturevalue("docker_engine")
        return docker_url()
    url: str = request.getfixturevalue("podman_url")
    return url


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["docker", "podman"])
def test_creating_and_replacing_containers_never_loads_the_sdk(
    request: pytest.FixtureRequest, kind: str, instance: str
) -> None:
    """Claim, network, volume, create (ports, env, health check, memory, init, a volume),
    start, stop (plain and by signal), remove and release on the socket leave the SDK and
    requests unloaded, so a `trueup apply` that changes containers does not pay their import."""
    url = _engine_url(request, kind)
    if not url.startswith("unix://"):
        pytest.skip(f"{url} is not a unix socket")
    volume = f"{instance}-data"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _WRITES, kind, url, instance, volume, BASE_IMAGE],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
    finally:
        cleanup(url, instance)  # containers and networks (the claim's too)
        client = docker.APIClient(base_url=url, version="1.41", timeout=30)
        try:
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_volume(volume, force=True)
        finally:
            client.close()


async def _lifecycle(rt: DockerRuntime, instance: str) -> list[str]:
    """A claim and a container's whole life, with the errors trueup tolerates or maps; returns
    the ids to hide from request lines."""
    assert await rt.claim_instance({"pid": "1"}) is None
    assert await rt.claim_instance({"pid": "2"}) == {"pid": "1"}  # 409, then the holder
    spec = ContainerSpec(
        name=f"{instance}-web-0",
        image=BASE_IMAGE,
        command=("sleep", "300"),
        labels={L.APP: "web", L.REPLICA: "0"},
        init=True,
    )
    cid = await rt.create(spec)
    await rt.start(cid)
    await rt.inspect(cid)
    await rt.stop(cid, grace_period=1)
    await rt.start(cid)
    await rt.stop(cid, grace_period=1, signal="SIGTERM")
    await rt.stop(cid, grace_period=1, signal="SIGTERM")  # 409: not running
    await rt.remove(cid)
    with pytest.raises(ContainerNotFound):
        await rt.inspect(cid)
    await rt.release_instance()
    await rt.release_instance()  # 404: nothing to release
    return [cid]


@pytest.mark.integration
async def test_a_tcp_engine_gets_the_same_requests_through_the_sdk(
    docker_engine: None, instance: str, tmp_socket_dir: Path
) -> None:
    """The same calls on a ``tcp://`` engine (the SDK's session) and on the socket (no SDK)
    send the same requests, counted the same."""
    upstream = docker_url().removeprefix("unix://")
    seen: dict[str, tuple[list[str], dict[str, int]]] = {}
    for transport, proxy in (
        ("unix", CountingProxy(upstream, tmp_socket_dir / "d.sock")),
        ("tcp", CountingProxy(upstream)),
    ):
        rt = DockerRuntime(proxy.url, instance=instance)
        try:
            ids = await _lifecycle(rt, instance)
        finally:
            await rt.close()
            proxy.close()
            cleanup(docker_url(), instance)
        lines = proxy.requests
        for cid in ids:
            lines = [line.replace(cid, "<id>") for line in lines]
        seen[transport] = (lines, dict(rt.calls))
    assert seen["tcp"] == seen["unix"]
    assert "POST /v1.41/containers/<id>/wait" in seen["unix"][0]
