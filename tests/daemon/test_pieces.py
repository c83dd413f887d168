"""The controller loop's pure pieces: the backoff formula, the retry of a failed pass, how a
failure is classified, which events heal, status tracking and the status file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from controller import labels as L
from controller.daemon.backoff import Backoff, PassRetry, backoff_delay, classify
from controller.daemon.loop import actions_of
from controller.daemon.pumps import needs_healing
from controller.daemon.status import AppStatus
from controller.daemon.tracking import status_document, track, write_status_file
from controller.errors import ConfigError, RuntimeUnavailable
from controller.planning import Plan
from controller.reconciler import PassResult
from controller.runtime.base import Health, RuntimeEvent
from controller.targets.containers.apply import Outcome


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        return None


def test_backoff_delay_doubles_caps_and_jitters_between_half_and_all() -> None:
    """1, 2, 4, 8, then the cap; a draw of 0 gives half the step."""
    steps = [backoff_delay(n, initial=1.0, maximum=8.0, draw=1.0) for n in range(1, 7)]
    assert steps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_delay(3, initial=1.0, maximum=8.0, draw=0.0) == 2.0


def test_pass_retry_backs_off_over_consecutive_failures_and_fires_once() -> None:
    """Each failed pass doubles the delay; the retry is due once, with the trigger of its
    kind; a pass that observed the engine starts the backoff afresh."""
    clock = Clock()
    retry = PassRetry(Backoff(initial=1.0, maximum=60.0, clock=clock, random=lambda: 1.0))
    assert retry.failed(internal=False) == 1.0
    assert retry.failed(internal=True) == 2.0
    assert retry.due(clock.now()) is None
    clock.t += 2.0
    assert retry.due(clock.now()) == "error-retry"
    assert retry.due(clock.now()) is None and retry.retry_at is None
    retry.succeeded()
    assert retry.failed(internal=False) == 1.0 and retry.trigger == "engine-retry"


def test_failed_pass_is_classified_logged_and_named_by_its_stage() -> None:
    """A transient error is retried with backoff and logged as reconcile_failed; a
    permanent one waits for the resync; a bug is reconcile_crashed, named internal."""
    clock = Clock()
    retry = PassRetry(Backoff(initial=1.0, maximum=60.0, clock=clock, random=lambda: 1.0))
    with capture_logs() as logs:
        lost = retry.failed_pass(RuntimeUnavailable("gone"), stage="observing", resync_s=600)
        bad = retry.failed_pass(ConfigError("no"), stage=None, resync_s=600)
        bug = retry.failed_pass(KeyError("x"), stage=None, resync_s=600)
    assert (lost, bad, bug) == ("observing: gone", "no", "internal error: KeyError: 'x'")
    assert [(e["event"], e["retry_in_s"]) for e in logs] == [
        ("reconcile_failed", 1.0),
        ("reconcile_failed", 600),
        ("reconcile_crashed", 2.0),
    ]
    assert retry.trigger == "error-retry"
    assert classify(RuntimeUnavailable("gone")) == ("transient", "gone")
    assert classify(ConfigError("no")) == ("permanent", "no")


def test_only_events_that_may_leave_an_app_short_heal() -> None:
    """die, destroy, oom and unhealthy of an app's container heal; others do not."""

    def event(kind: str, app: str | None = "web", health: Health | None = None) -> RuntimeEvent:
        labels = {L.APP: app} if app else {}
        return RuntimeEvent(kind, "c", "n", labels, datetime.now(UTC), health=health)

    assert all(needs_healing(event(k)) for k in ("die", "destroy", "oom"))
    assert needs_healing(event("health_status", health="unhealthy"))
    assert not needs_healing(event("health_status", health="healthy"))
    assert not needs_healing(event("start"))
    assert not needs_healing(event("die", app=None))


def status(sync: str, health: str) -> AppStatus:
    return AppStatus("web", sync, health, "abc", 1, 1, "1/1 ready")


def test_track_moves_the_transition_only_when_sync_or_health_changes() -> None:
    """Same sync and health: the time and the last error stay; a change is a transition."""
    first = track(None, status("OutOfSync", "Degraded"), "boom", 10.0)
    assert (first.last_error, first.last_transition) == ("boom", 10.0)
    same = track(first, status("OutOfSync", "Degraded"), None, 20.0)
    assert (same.last_error, same.last_transition) == ("boom", 10.0)
    healed = track(same, status("Synced", "Healthy"), None, 30.0)
    assert (healed.last_error, healed.last_transition) == (None, 30.0)


def test_status_file_is_written_whole_and_a_failure_is_logged(tmp_path: Path) -> None:
    """status.json holds the document; a state dir that is gone is logged, not raised."""
    doc = status_document([{"name": "web"}], revision="abc", api=None, last_error=None)
    write_status_file(tmp_path / "status.json", doc)
    written = json.loads((tmp_path / "status.json").read_text())
    assert written["apps"] == [{"name": "web"}] and written["revision"] == "abc"
    assert not (tmp_path / "status.tmp").exists()
    with capture_logs() as logs:
        write_status_file(tmp_path / "gone" / "status.json", doc)
    assert [e["event"] for e in logs] == ["status_write_failed"]


def test_a_pass_outcome_becomes_a_history_action() -> None:
    """Each outcome is one action row: ok or failed, with its message and duration."""
    result = PassResult(
        revision="abc",
        plan=Plan("abc"),
        problems=[],
        outcomes=[
            Outcome("web", "update", True, "", 1.5),
            Outcome("db", "create", False, "no image", 0.1),
        ],
    )
    rows = [(a.app, a.kind, a.result, a.message) for a in actions_of(result)]
    assert rows == [("web", "update", "ok", ""), ("db", "create", "failed", "no image")]
