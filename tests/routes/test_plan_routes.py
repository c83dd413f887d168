"""Route differences join the plan: in the app's change, or as an action ``route``."""

from __future__ import annotations

from dataclasses import replace

from controller.cli.render import plan_json, plan_text
from controller.routes.table import RouteEntry
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import container, desired, desired_app

HTTP = [{"name": "http", "containerPort": 8080}]
ROUTE = [{"host": "web.example.com", "port": "http"}]


def test_new_app_route_is_a_field_of_its_create() -> None:
    """Creating an app with a route shows the route being added to the proxy."""
    web = desired_app("web", ports=HTTP, routes=ROUTE)
    (change,) = make_plan(desired(web), observe([]), current_routes=()).changes
    assert change.action == "create"
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.routes[web.example.com/]", None, "web:8080")
    ]
    assert change.reasons[-1] == "routes: 1 to add in the proxy"


def test_proxy_serving_the_ready_replicas_is_in_sync() -> None:
    """Same routes, same ready upstreams as the proxy: nothing to do."""
    web = desired_app("web", ports=HTTP, routes=ROUTE)
    row = replace(container(web, 0), ip_address="10.0.0.2")
    current = (RouteEntry("web.example.com", "/", "web", 8080, ("10.0.0.2:8080",)),)
    plan = make_plan(desired(web), observe([row]), current_routes=current)
    assert plan.in_sync and plan.routes == current


def test_stale_proxy_is_a_route_change_and_json_keeps_its_keys() -> None:
    """Containers fine but the proxy lost the route (a restarted Caddy): action ``route``."""
    web = desired_app("web", ports=HTTP, routes=ROUTE)
    row = replace(container(web, 0), ip_address="10.0.0.2")
    stale = (RouteEntry("web.example.com", "/", "web", 8080, ("10.0.0.9:8080",)),)
    for current, path, before, after in [
        ((), "spec.routes[web.example.com/]", None, "web:8080"),
        (stale, "spec.routes[web.example.com/].upstreams", ["10.0.0.9:8080"], ["10.0.0.2:8080"]),
    ]:
        plan = make_plan(desired(web), observe([row]), current_routes=current)
        doc = plan_json(plan, [])
        assert set(doc) == {"revision", "in_sync", "changes", "errors"}
        assert doc["in_sync"] is False
        assert doc["changes"] == [
            {
                "app": "web",
                "action": "route",
                "reasons": [plan.changes[0].reasons[0]],
                "fields": [{"path": path, "before": before, "after": after}],
            }
        ]
    assert "~ web  route" in plan_text(plan, [])


def test_deleted_app_loses_its_routes_in_the_delete() -> None:
    """An app removed from git: its delete change lists the route removal."""
    gone = desired_app("gone", ports=HTTP, routes=[{"host": "gone.example.com", "port": "http"}])
    keep = desired_app("keep")
    current = (RouteEntry("gone.example.com", "/", "gone", 8080, ("10.0.0.3:8080",)),)
    rows = [container(gone, 0), container(keep, 0)]
    plan = make_plan(desired(keep), observe(rows), current_routes=current)
    (change,) = plan.changes
    assert change.action == "delete"
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.routes[gone.example.com/]", "gone:8080", None)
    ]
    assert plan.routes == ()


def test_without_a_router_routes_are_computed_not_compared() -> None:
    """No current table: no route changes, but the plan still carries the table to show."""
    web = desired_app("web", ports=HTTP, routes=ROUTE)
    row = replace(container(web, 0), ip_address="10.0.0.2")
    plan = make_plan(desired(web), observe([row]))
    assert plan.in_sync
    assert [e.key for e in plan.routes] == ["web.example.com/"]
