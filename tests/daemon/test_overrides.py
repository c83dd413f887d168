"""The override store (suspended apps, approved revision) and manual mode's state machine.

Pure core: plans from the container planner over built observations; the gate on an
in-memory or tmp-dir store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.daemon.manual import Pending, SyncGate
from controller.daemon.overrides import SUSPENDED, SUSPENDED_HELD, Overrides, suspend_plan
from controller.daemon.status import AppStatus, derive_status
from controller.planning import Plan
from controller.targets.containers.plan import ContainerObservation, make_plan
from tests.builders import container, desired, desired_app, observed

A = "a" * 40
B = "b" * 40


def test_suspended_apps_lose_every_change_and_are_listed_as_skipped() -> None:
    """An update, a heal and a prune of suspended apps are dropped (held, so OutOfSync); a
    suspended app without changes is skipped as suspended; other apps keep their changes."""
    old_web, api, gone = desired_app("web"), desired_app("api"), desired_app("gone")
    new_web = desired_app("web", env={"VERSION": "2"})
    rows = (
        container(old_web, 0),
        container(api, 0, state="exited", exit_code=1),
        container(gone, 0),
        container(desired_app("db"), 0),
    )
    want = desired(new_web, api, desired_app("db"), desired_app("new"))
    plan = make_plan(want, observed(*rows))
    assert {c.app for c in plan.changes} == {"web", "api", "gone", "new"}
    kept = suspend_plan(plan, want, {"web", "gone", "db"})
    assert {c.app for c in kept.changes} == {"api", "new"}
    reasons = {s.app: s.reason for s in kept.skipped}
    assert reasons == {"web": SUSPENDED_HELD, "gone": SUSPENDED_HELD, "db": SUSPENDED}
    statuses = {
        s.name: s
        for s in derive_status(ContainerObservation(rows), want, kept, suspended={"web", "db"})
    }
    assert (statuses["web"].health, statuses["web"].sync) == ("Suspended", "OutOfSync")
    assert (statuses["db"].health, statuses["db"].sync) == ("Suspended", "Synced")
    assert suspend_plan(plan, want, set()) is plan


def test_overrides_survive_a_reload_and_are_written_whole(tmp_path: Path) -> None:
    store = Overrides.load(tmp_path)
    assert (store.suspended, store.approved) == (set(), None)
    assert store.set_suspended("web", True) is True
    assert store.set_suspended("web", True) is False  # already: nothing written again
    store.set_approved(A)
    again = Overrides.load(tmp_path)
    assert (again.suspended, again.approved) == ({"web"}, A)
    doc = json.loads((tmp_path / "overrides.json").read_text())
    assert doc == {"suspended": ["web"], "approved_revision": A}
    assert [p.name for p in tmp_path.iterdir()] == ["overrides.json"]  # no temporary left


def test_a_save_that_fails_leaves_the_override_out_of_force(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the state dir should be")
    store = Overrides(tmp_path / "state" / "overrides.json")
    try:
        store.set_suspended("web", True)
    except OSError:
        pass
    else:
        raise AssertionError("expected the save to fail")
    assert store.suspended == set()


def pending(revision: str, *apps: str) -> Pending:
    from controller.planning import Change

    changes = tuple(Change(a, "update", ("spec changed",)) for a in apps)
    return Pending(revision, "subject", 0.0, Plan(revision, changes), ())


def test_the_gate_accepts_only_the_pending_revision_while_it_is_the_tip() -> None:
    gate = SyncGate("manual")
    assert gate.approve(A, A) == "nothing_pending"
    gate.planned(A, pending(A, "web"))
    assert gate.approve(B, A) == "stale"  # not the pending one
    assert gate.approve(A, B) == "stale"  # a newer commit arrived meanwhile
    assert gate.pending is not None and gate.approved is None
    assert gate.approve(A, A) == "accepted"
    assert (gate.approved, gate.pending) == (A, None)
    assert gate.approve(A, A) == "nothing_pending"
    assert SyncGate("auto").approve(A, A) == "automatic"


def test_auto_mode_records_what_it_applied_and_manual_mode_does_not(tmp_path: Path) -> None:
    auto = SyncGate("auto", Overrides.load(tmp_path))
    auto.applied(A)
    assert Overrides.load(tmp_path).approved == A
    manual = SyncGate("manual", Overrides.load(tmp_path))
    manual.applied(B)
    assert manual.approved == A and Overrides.load(tmp_path).approved == A


def test_the_pending_apps_show_out_of_sync_with_the_revision_waiting() -> None:
    gate = SyncGate("manual")
    synced = [AppStatus(n, "Synced", "Healthy", A, 1, 1, "1/1 ready") for n in ("api", "web")]
    assert gate.overlay(synced) == synced
    gate.planned(B, pending(B, "web"))
    api, web = gate.overlay(synced)
    assert api == synced[0]
    assert web.sync == "OutOfSync" and web.message.endswith(f"{B[:12]} waits for approval")
    assert gate.to_json()["pending"] == {
        "revision": B, "subject": "subject", "planned_at": "1970-01-01T00:00:00Z", "apps": ["web"],
    }  # fmt: skip


@pytest.mark.parametrize("text", ["{", '{"suspended": "web"}', '{"approved_revision": 3}'])
def test_a_broken_overrides_file_is_named(tmp_path: Path, text: str) -> None:
    from controller.errors import ConfigError

    (tmp_path / "overrides.json").write_text(text)
    with pytest.raises(ConfigError, match=r"overrides\.json"):
        Overrides.load(tmp_path)
