"""What the Docker adapter sends, built pure: spec in, body out, no engine. The create body is
also checked against the docker SDK itself (``test_engine_writes``)."""

from __future__ import annotations

import json

import pytest
from docker.types import Ulimit

from controller import labels as L
from controller.runtime import BuildRequest, ContainerSpec, HealthCheckSpec, PortSpec
from controller.runtime import docker_requests as req
from controller.runtime.podman import ULIMIT, PodmanRuntime
from tests.runtime.test_engine_writes import HOST, ON_OTHER_NET, PLAIN, RICH, sdk_create_body

PODMAN_ULIMITS = [
    {"Name": "nofile", "Soft": ULIMIT, "Hard": ULIMIT},
    {"Name": "nproc", "Soft": ULIMIT, "Hard": ULIMIT},
]
ATTACH = {
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "AttachStdin": False,
    "AttachStdout": True,
    "AttachStderr": True,
    "NetworkDisabled": False,
}


@pytest.mark.parametrize("spec", [RICH, PLAIN, HOST, ON_OTHER_NET], ids=lambda s: s.name)
def test_create_body_is_the_one_the_sdk_sent_with_podman_ulimits(spec: ContainerSpec) -> None:
    """The pure builder, given Podman's ulimits, gives the body the SDK built for them."""
    rt = PodmanRuntime("unix:///nonexistent.sock", instance="t")
    sdk = sdk_create_body(
        rt, spec, [Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"]) for u in PODMAN_ULIMITS]
    )
    mine = req.create_body(spec, instance="t", ulimits=PODMAN_ULIMITS)
    assert json.loads(json.dumps(mine)) == sdk


def test_a_plain_spec_sends_only_what_it_sets() -> None:
    """Unset fields are left out; the instance label, the managed network and its app alias
    are always there."""
    spec = ContainerSpec(name="t-job-0", image="busybox:1.36", labels={L.APP: "job"})
    assert req.create_body(spec, instance="t") == {
        "Image": "busybox:1.36",
        "Labels": {L.APP: "job", L.INSTANCE: "t"},
        "HostConfig": {"NetworkMode": "trueup-t", "RestartPolicy": {"Name": "no"}},
        "NetworkingConfig": {"EndpointsConfig": {"trueup-t": {"Aliases": ["job"]}}},
        **ATTACH,
    }


def test_the_rich_spec_body() -> None:
    """Every field of the rich spec lands where the engine reads it."""
    body = req.create_body(RICH, instance="t")
    assert body["Cmd"] == ["serve", "--port", "8080"]
    assert body["Entrypoint"] == ["/bin/entry"]
    assert body["Env"] == ["GREETING=hi", "EMPTY="]
    assert (body["WorkingDir"], body["User"]) == ("/srv", "1000:1000")
    assert body["ExposedPorts"] == {"8080/tcp": {}, "9090/udp": {}, "7070/tcp": {}}
    assert body["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 2_500_000_000,
        "Timeout": 1_000_000_000,
        "Retries": 4,
        "StartPeriod": 3_000_000_000,
    }
    assert (body["StopSignal"], body["StopTimeout"]) == ("SIGINT", 3)  # rounded up
    assert body["HostConfig"] == {
        "NetworkMode": "trueup-t",
        "RestartPolicy": {"Name": "on-failure"},
        "Binds": ["t-data:/data:rw", "/etc/hostname:/host:ro"],
        "PortBindings": {
            "8080/tcp": [{"HostIp": "", "HostPort": "18080"}],
            "9090/udp": [{"HostIp": "127.0.0.1", "HostPort": "19090"}],
        },
        "Init": True,
        "Memory": 64 * 1024 * 1024,
        "NanoCpus": 500_000_000,
        "Privileged": True,
        "CapAdd": ["NET_ADMIN"],
    }
    assert body["NetworkingConfig"] == {
        "EndpointsConfig": {"trueup-t": {"Aliases": ["web", "www"]}}
    }


def test_host_and_none_network_modes_stay_off_the_managed_network() -> None:
    """``network_mode`` host or none: no endpoint, the mode as given."""
    body = req.create_body(HOST, instance="t")
    assert "NetworkingConfig" not in body
    assert body["HostConfig"]["NetworkMode"] == "host"
    assert body["Cmd"] == []  # an empty command is sent, not left out
    none = ContainerSpec(name="t-x-0", image="busybox:1.36", network_mode="none")
    assert req.managed_network(none, "t") is None
    assert req.create_body(none, instance="t")["HostConfig"]["NetworkMode"] == "none"


def test_another_network_gets_the_endpoint_and_no_alias_without_an_app() -> None:
    """``spec.network`` replaces the instance network; no app label means no alias."""
    assert req.managed_network(ON_OTHER_NET, "t") == "shared"
    bare = ContainerSpec(name="t-x-0", image="busybox:1.36", network="shared")
    assert req.networking_config(bare, "shared", {}) == {"EndpointsConfig": {"shared": {}}}


def test_ulimits_are_sent_only_when_given() -> None:
    """Docker's defaults stand unless the adapter gives ulimits (Podman does)."""
    assert "Ulimits" not in req.host_config(PLAIN, "trueup-t", None)
    assert req.host_config(PLAIN, "trueup-t", PODMAN_ULIMITS)["Ulimits"] == PODMAN_ULIMITS


def test_a_port_without_a_host_port_is_exposed_but_not_published() -> None:
    """Only ports with a host port are bound on the host; the host IP defaults to all."""
    spec = ContainerSpec(
        name="t-x-0",
        image="busybox:1.36",
        ports=(PortSpec(container_port=80), PortSpec(container_port=443, host_port=8443)),
    )
    assert req.port_bindings(spec) == {"443/tcp": [{"HostIp": "", "HostPort": "8443"}]}


def test_health_check_durations_are_nanoseconds() -> None:
    """Fractions of a second survive as whole nanoseconds."""
    hc = HealthCheckSpec(test=("CMD-SHELL", "true"), interval=0.5, timeout=0.25, start_period=0)
    assert req.healthcheck(hc) == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 500_000_000,
        "Timeout": 250_000_000,
        "Retries": 3,
        "StartPeriod": 0,
    }


def test_network_volume_and_query_builders() -> None:
    """Networks are labelled bridges (the claim internal), volumes labelled for the instance,
    lists filtered by the instance label, stop and remove queries as the engine reads them."""
    assert req.network_body("trueup-t", labels={L.INSTANCE: "t"}) == {
        "Name": "trueup-t",
        "Driver": "bridge",
        "CheckDuplicate": True,
        "Labels": {L.INSTANCE: "t"},
    }
    assert req.network_body("c", labels={}, internal=True)["Internal"] is True
    assert req.volume_body("trueup-t_data", instance="t") == {
        "Name": "trueup-t_data",
        "Labels": {L.INSTANCE: "t"},
    }
    query = req.label_filter("t")
    assert query["all"] == "1"
    assert json.loads(query["filters"]) == {"label": [L.instance_filter("t")]}
    assert json.loads(req.name_filter("trueup-t")["filters"]) == {"name": ["trueup-t"]}
    assert req.stop_query(None) is None
    assert req.stop_query(0) == {"t": "0"}
    assert req.remove_query(force=True) == {"v": "1", "force": "1"}
    assert req.remove_query(force=False) == {"v": "1", "force": "0"}
    assert req.events_filters("t") == {"type": "container", "label": L.instance_filter("t")}


def test_build_arguments() -> None:
    """A tar context, never a pull of a newer base, intermediate containers removed; empty
    args and labels are not sent."""
    request = BuildRequest(context=b"", tag="trueup/web:abc", args={"V": "1"}, target="run")
    assert req.build_kwargs(request) == {
        "custom_context": True,
        "tag": "trueup/web:abc",
        "dockerfile": "Dockerfile",
        "buildargs": {"V": "1"},
        "target": "run",
        "labels": None,
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
    }
    assert req.build_kwargs(BuildRequest(context=b"", tag="x:1"))["buildargs"] is None


def test_split_image_reference() -> None:
    """Repository and tag (or digest); no tag means latest; a registry port is no tag."""
    assert req.split_image("busybox") == ("busybox", "latest")
    assert req.split_image("reg:5000/team/app") == ("reg:5000/team/app", "latest")
    assert req.split_image("reg:5000/team/app:1.2") == ("reg:5000/team/app", "1.2")
    assert req.split_image("app@sha256:abc") == ("app", "sha256:abc")
