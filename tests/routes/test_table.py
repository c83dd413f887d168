"""The route table: ready replicas only, retiring ones out, sorted, kept apps refreshed."""

from __future__ import annotations

from dataclasses import replace

from controller.desired.resolve import DesiredApp, DesiredState
from controller.routes.table import RouteEntry, build_table, normalize_path
from controller.runtime.base import ContainerInfo
from controller.targets.observed import observe
from tests.builders import container, desired, desired_app

HTTP = [{"name": "http", "containerPort": 8080}]


def web(**spec: object) -> DesiredApp:
    spec.setdefault("ports", HTTP)
    spec.setdefault("routes", [{"host": "web.example.com", "port": "http"}])
    return desired_app("web", **spec)


def at(info: ContainerInfo, ip: str | None) -> ContainerInfo:
    return replace(info, ip_address=ip)


def test_only_ready_replicas_with_an_address_serve() -> None:
    """Healthy or check-less running replicas serve; starting, unhealthy, exited do not."""
    app = web(replicas=5)
    rows = [
        at(container(app, 0, health="healthy"), "172.18.0.10"),
        at(container(app, 1, health="starting"), "172.18.0.11"),
        at(container(app, 2, health="unhealthy"), "172.18.0.12"),
        at(container(app, 3, state="exited", exit_code=1), "172.18.0.13"),
        at(container(app, 4, health="healthy"), "172.18.0.9"),
        at(container(app, 4, health="healthy", age=1), None),
    ]
    (entry,) = build_table(desired(app), observe(rows))
    assert entry == RouteEntry(
        "web.example.com", "/", "web", 8080, ("172.18.0.9:8080", "172.18.0.10:8080")
    )
    assert entry.key == "web.example.com/" and entry.target == "web:8080"


def test_retiring_replica_leaves_the_table_before_it_stops() -> None:
    """A container named in ``exclude`` is out even while it still runs healthy."""
    app = web(replicas=2)
    old = at(container(app, 0, health="healthy"), "10.0.0.2")
    new = at(container(app, 1, health="healthy"), "10.0.0.3")
    (entry,) = build_table(desired(app), observe([old, new]), exclude={old.id})
    assert entry.upstreams == ("10.0.0.3:8080",)


def test_entries_are_sorted_and_paths_normalised() -> None:
    """Host then path order; ``/v1/`` is the prefix ``/v1``; no ready replica: no upstream."""
    api = desired_app(
        "api",
        ports=HTTP,
        routes=[
            {"host": "example.com", "path": "/v1/", "port": "http"},
            {"host": "api.example.com", "port": "http"},
        ],
    )
    table = build_table(desired(api, web()), observe([]))
    assert [(e.key, e.app, e.upstreams) for e in table] == [
        ("api.example.com/", "api", ()),
        ("example.com/v1", "api", ()),
        ("web.example.com/", "web", ()),
    ]
    assert normalize_path("/") == "/" and normalize_path("/a/b/") == "/a/b"


def test_kept_app_keeps_its_routes_and_a_deleted_one_loses_them() -> None:
    """An app left running without a usable manifest keeps what the proxy had (upstreams
    refreshed); an app gone from git is not in the table."""
    old = web()
    row = at(container(old, 0), "10.0.0.5")
    current = (
        RouteEntry("web.example.com", "/", "web", 8080, ("10.0.0.99:8080",)),
        RouteEntry("gone.example.com", "/", "gone", 80, ("10.0.0.7:80",)),
    )
    kept = build_table(DesiredState("r2"), observe([row]), current=current, keep={"web"})
    assert kept == (RouteEntry("web.example.com", "/", "web", 8080, ("10.0.0.5:8080",)),)


def test_replica_of_an_older_spec_is_reached_on_its_own_port() -> None:
    """During a rollout that moves the port, old replicas are addressed on the old port."""
    old = web(ports=[{"name": "http", "containerPort": 8080}])
    new = web(ports=[{"name": "http", "containerPort": 9090}])
    rows = [at(container(old, 0), "10.0.0.2"), at(container(new, 0, age=1), "10.0.0.3")]
    (entry,) = build_table(desired(new), observe(rows))
    assert entry.port == 9090
    assert entry.upstreams == ("10.0.0.2:8080", "10.0.0.3:9090")
