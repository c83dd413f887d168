"""The HTTP layer's pure pieces: listener URLs, the git readiness check, which reads need the
read token, and how a history row appears in the API."""

from __future__ import annotations

from controller.errors import SourceError, SourceUnavailable
from controller.http.api import action_json, iso
from controller.http.auth import protected_read
from controller.http.probes import git_check
from controller.http.server import bound_urls


def test_bound_urls_bracket_ipv6_and_reach_every_interface_through_loopback() -> None:
    """0.0.0.0 is connected to at 127.0.0.1; an IPv6 host is bracketed in both URLs."""
    assert bound_urls("127.0.0.1", 9090) == ("http://127.0.0.1:9090", "http://127.0.0.1:9090")
    assert bound_urls("0.0.0.0", 80) == ("http://127.0.0.1:80", "http://0.0.0.0:80")
    assert bound_urls("::1", 8080) == ("http://[::1]:8080", "http://[::1]:8080")


def test_git_check_allows_a_transient_failure_within_its_budget_only() -> None:
    """A transient fetch failure is ready until the budget is spent; a permanent one never."""
    assert git_check(None, 0.0, 60.0) == {"ok": True, "message": "last fetch succeeded"}
    within = git_check(SourceUnavailable("remote down"), 10.0, 60.0)
    assert within["ok"] and "(within its 60s retry budget): remote down" in within["message"]
    past = git_check(SourceUnavailable("remote down"), 61.0, 60.0)
    assert not past["ok"] and "past its 60s retry budget" in past["message"]
    permanent = git_check(SourceError("not a repository"), 0.0, 60.0)
    assert not permanent["ok"] and "permanent error" in permanent["message"]


def test_protected_reads_are_metrics_and_the_api_not_probes_or_posts() -> None:
    """GET/HEAD of /metrics and /api/v1/* need the read token; probes and POSTs do not."""
    assert protected_read("GET", "/metrics")
    assert protected_read("HEAD", "/api/v1/apps/{name}")
    assert not protected_read("GET", "/healthz")
    assert not protected_read("GET", "/readyz")
    assert not protected_read("POST", "/api/v1/reconcile")
    assert not protected_read("GET", "")


def test_a_history_row_shows_as_a_recent_action_in_utc() -> None:
    """Times are ISO 8601 UTC with a Z, durations rounded to milliseconds."""
    row = {
        "started_at": 0.0,
        "revision": "abc",
        "trigger": "revision",
        "kind": "update",
        "result": "ok",
        "message": "",
        "duration_s": 1.23456,
    }
    assert action_json(row) == {
        "at": "1970-01-01T00:00:00Z",
        "revision": "abc",
        "trigger": "revision",
        "action": "update",
        "result": "ok",
        "message": "",
        "duration_s": 1.235,
    }
    assert iso(None) is None
