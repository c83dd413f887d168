"""The Caddy server trueup renders, and reading it back (pure; no Caddy needed)."""

from __future__ import annotations

from controller.routes.caddy import parse_server, server_config
from controller.routes.table import RouteEntry

TABLE = (
    RouteEntry("*.example.com", "/", "wild", 80, ("10.0.0.4:80",)),
    RouteEntry("example.com", "/", "site", 8080, ("10.0.0.2:8080", "10.0.0.3:8080")),
    RouteEntry("example.com", "/api", "api", 9000, ()),
)


def test_routes_are_ordered_for_first_match_and_end_in_a_404() -> None:
    """Longer prefixes before ``/``, exact hosts before wildcards, then a catch-all 404."""
    server = server_config(TABLE, instance="prod", listen="127.0.0.1:8080")
    assert server["listen"] == ["127.0.0.1:8080"]
    assert server["automatic_https"] == {"disable": True}
    matches = [r.get("match") for r in server["routes"]]
    assert matches == [
        [{"host": ["example.com"], "path": ["/api", "/api/*"]}],
        [{"host": ["example.com"]}],
        [{"host": ["*.example.com"]}],
        None,
    ]
    assert server["routes"][-1]["handle"][0]["status_code"] == 404


def test_ready_replicas_are_balanced_round_robin_and_none_ready_is_503() -> None:
    """Upstreams round-robin with retries on another replica; no upstream answers 503."""
    routes = server_config(TABLE, instance="prod")["routes"]
    api, site = routes[0]["handle"][0], routes[1]["handle"][0]
    assert api["handler"] == "static_response" and api["status_code"] == 503
    assert site["handler"] == "reverse_proxy"
    assert site["upstreams"] == [{"dial": "10.0.0.2:8080"}, {"dial": "10.0.0.3:8080"}]
    assert site["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
    assert site["load_balancing"]["try_duration"]


def test_https_leaves_automatic_https_to_caddy() -> None:
    """With https, trueup does not switch Caddy's automatic HTTPS off."""
    assert "automatic_https" not in server_config(TABLE, instance="p", listen=":443", https=True)


def test_reading_back_gives_the_same_table_and_ignores_foreign_routes() -> None:
    """parse_server inverts server_config; routes of other instances or people are skipped."""
    server = server_config(TABLE, instance="prod")
    server["routes"].insert(0, {"match": [{"host": ["manual.example.com"]}], "handle": []})
    other = server_config(TABLE[:1], instance="staging")["routes"][0]
    server["routes"].append(other)
    assert parse_server(server, instance="prod") == tuple(sorted(TABLE))
    assert parse_server(None, instance="prod") == ()


def test_the_admin_client_only_addresses_its_own_server() -> None:
    """The admin URL names exactly `servers/trueup-<instance>`; an instance name that would
    climb out of it (`x/../../..` is `/config/apps/`) is refused before any request."""
    import pytest

    from controller.errors import ConfigError
    from controller.routes.caddy import CaddyRouter

    router = CaddyRouter("http://127.0.0.1:2019/", instance="prod")
    assert router.url == "http://127.0.0.1:2019/config/apps/http/servers/trueup-prod"
    for bad in ("x/../../..", "a%2F..", "a?b", "A", ""):
        with pytest.raises(ConfigError, match="invalid instance name"):
            CaddyRouter("http://127.0.0.1:2019", instance=bad)
