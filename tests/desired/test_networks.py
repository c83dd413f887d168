"""``spec.networks`` in the desired state: the hash of an app without networks is the one it
always had, networks are part of the spec (a change rolls the app), and each replica is
created on its app networks with its aliases."""

from __future__ import annotations

import json
from typing import Any

from controller.desired.resolve import app_networks, container_spec
from controller.runtime import docker_requests as req
from controller.runtime.base import NetworkAttachment
from controller.targets.containers.plan import make_plan
from tests.builders import container, desired, desired_app, observed

RICH: dict[str, Any] = {
    "replicas": 2,
    "env": {"LOG_LEVEL": "info"},
    "ports": [{"name": "http", "containerPort": 8080}],
    "routes": [{"host": "web.test", "port": "http"}],
    "healthCheck": {"http": {"path": "/healthz", "port": "http"}},
    "volumes": [{"name": "data", "mountPath": "/data"}],
    "init": True,
    "command": ["httpd", "-f"],
}


def test_an_app_without_networks_keeps_its_spec_hash() -> None:
    """The spec hash of an app that declares no networks is the one trueup gave it before
    networks existed (taken from the code before this field), so no deployment rolls."""
    web = desired_app("web", **RICH)
    assert "networks" not in web.spec
    assert web.spec_hash == "8d24630747762ffe39517bbd467207db7ca71a5324cd9f03f567065f02e68819"
    spec = container_spec(web, replica=0, instance="t", revision="r1")
    assert spec.networks == () and spec.aliases == ("web",)
    assert req.networking_config(spec, "trueup-t", spec.labels) == {
        "EndpointsConfig": {"trueup-t": {"Aliases": ["web"]}}
    }


def test_joining_a_network_rolls_the_app_and_names_the_field() -> None:
    """Adding a network is an update of every replica (start-first), shown as the field."""
    old = desired_app("db", replicas=2)
    new = desired_app("db", replicas=2, networks=[{"name": "shop", "aliases": ["db"]}])
    (change,) = make_plan(desired(new), observed(container(old, 0), container(old, 1))).changes
    assert change.action == "update"
    assert [(f.path, f.before) for f in change.fields] == [("spec.networks", None)]
    assert json.loads(json.dumps(change.fields[0].after)) == [{"name": "shop", "aliases": ["db"]}]
    assert [s.start_first for s in change.steps] == [True, True]
    moved = desired_app("db", replicas=2, networks=[{"name": "shop2", "aliases": ["db"]}])
    assert moved.spec_hash != new.spec_hash


def test_replicas_are_created_on_their_first_network_and_connected_to_the_rest() -> None:
    """The create body puts the container on the first app network with its aliases (the
    app name by default); the others are connected before start with theirs."""
    api = desired_app("api", networks=[{"name": "shop"}, {"name": "ops", "aliases": ["api-ops"]}])
    spec = container_spec(api, replica=0, instance="t", revision="r1")
    assert spec.networks == (
        NetworkAttachment("trueup-t-shop", ("api",)),
        NetworkAttachment("trueup-t-ops", ("api-ops",)),
    )
    body = req.create_body(spec, instance="t")
    assert body["HostConfig"]["NetworkMode"] == "trueup-t-shop"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"trueup-t-shop": {"Aliases": ["api"]}}}
    assert req.connect_body("c1", ("api-ops",)) == {
        "Container": "c1",
        "EndpointConfig": {"Aliases": ["api-ops"]},
    }
    other = desired_app("web")
    assert app_networks(desired(api, other), "t") == {"trueup-t-shop", "trueup-t-ops"}
