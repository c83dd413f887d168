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


def test_a_suspended_app_keeps_the_routes_the_proxy_serves() -> None:
    """``suspend: true`` committed with a new host: the proxy keeps serving the old host from
    the running replica (upstreams refreshed), no route change is planned; resumed, the new
    host replaces it. Without a table read from the proxy, the manifest's routes are shown."""
    row_of = desired_app("web", ports=HTTP, routes=ROUTE)
    row = replace(container(row_of, 0), ip_address="10.0.0.2")
    current = (RouteEntry("web.example.com", "/", "web", 8080, ("10.0.0.2:8080",)),)
    moved = [{"host": "www.example.com", "port": "http"}]
    held = desired_app("web", ports=HTTP, routes=moved, suspend=True)
    plan = make_plan(desired(held), observe([row]), current_routes=current)
    assert plan.routes == current and plan.in_sync
    stale = (replace(current[0], upstreams=("10.0.0.9:8080",)),)
    plan = make_plan(desired(held), observe([row]), current_routes=stale)
    assert plan.routes == current  # the held entry, its upstreams refreshed
    resumed = desired_app("web", ports=HTTP, routes=moved)
    plan = make_plan(desired(resumed), observe([row]), current_routes=current)
    assert [(r.host, r.upstreams) for r in plan.routes] == [("www.example.com", ("10.0.0.2:8080",))]
    plan = make_plan(desired(held), observe([row]))
    assert [r.host for r in plan.routes] == ["www.example.com"]
    plan = make_plan(desired(held), observe([row]), current_routes=())  # a restarted proxy
    assert [r.host for r in plan.routes] == ["www.example.com"]  # serves it again


def test_a_runtime_suspension_holds_the_routes_the_apply_pushes() -> None:
    """`trueup suspend web`: the pass's route table (what the routes stage pushes) keeps web's
    served entry while the newer manifest moves its host; other apps follow git."""
    from controller.daemon.overrides import SUSPENDED, suspend_plan
    from controller.routes.table import build_table, kept_apps

    web = desired_app("web", ports=HTTP, routes=[{"host": "www.example.com", "port": "http"}])
    api = desired_app("api", ports=HTTP, routes=[{"host": "api2.example.com", "port": "http"}])
    rows = [replace(container(web, 0), ip_address="10.0.0.2"),
            replace(container(api, 0), ip_address="10.0.0.3")]  # fmt: skip
    current = (RouteEntry("web.example.com", "/", "web", 8080, ("10.0.0.2:8080",)),
               RouteEntry("api.example.com", "/", "api", 8080, ("10.0.0.3:8080",)))  # fmt: skip
    state = desired(web, api)
    plan = suspend_plan(make_plan(state, observe(rows), current_routes=current), state, {"web"})
    assert [(s.app, s.hold_routes) for s in plan.skipped] == [("web", True)]
    assert SUSPENDED not in [s.reason for s in plan.skipped]  # held: a change waits for it
    keep = kept_apps(state, plan.skipped)
    table = build_table(state, observe(rows), current=current, keep=keep)
    assert [(r.host, r.app) for r in table] == [
        ("api2.example.com", "api"),
        ("web.example.com", "web"),
    ]
    unread = build_table(state, observe(rows), keep=keep)  # the proxy's table not read
    assert [r.host for r in unread] == ["api2.example.com", "www.example.com"]
