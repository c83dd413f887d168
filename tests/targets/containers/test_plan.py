"""The plan names every action with its reasons, orders it, and is deterministic."""

from __future__ import annotations

import dataclasses
import json

import pytest

from controller import labels as L
from controller.cli.render import change_lines, plan_json_text
from controller.desired.secrets import SecretStore
from controller.targets.containers.plan import make_plan
from tests.builders import container, desired, desired_app, observed


def test_new_app_is_created_with_every_replica() -> None:
    """An app in git with no container gets a create with one step per replica."""
    web = desired_app("web", replicas=3)
    plan = make_plan(desired(web), observed())
    (change,) = plan.changes
    assert change.action == "create"
    assert [s.index for s in change.steps] == [0, 1, 2]
    assert change.reasons == ("new app: 3 replica(s)",)


def test_zero_replicas_and_nothing_running_is_in_sync() -> None:
    """replicas: 0 with no container needs nothing."""
    assert make_plan(desired(desired_app("web", replicas=0)), observed()).in_sync


def test_matching_state_is_in_sync() -> None:
    """Containers of the desired spec, running, at every index: an empty plan."""
    web = desired_app("web", replicas=2)
    plan = make_plan(desired(web), observed(container(web, 0), container(web, 1)))
    assert plan.in_sync and plan.changes == ()


def test_changed_field_is_an_update_with_field_diff() -> None:
    """A spec change rolls every replica start-first and names the changed field."""
    old = desired_app("web", replicas=2, env={"LOG_LEVEL": "info"})
    new = desired_app("web", replicas=2, env={"LOG_LEVEL": "debug"})
    plan = make_plan(desired(new), observed(container(old, 0), container(old, 1)))
    (change,) = plan.changes
    assert change.action == "update"
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.env.LOG_LEVEL", "info", "debug")
    ]
    assert [s.start_first for s in change.steps] == [True, True]
    assert all(len(s.retire) == 1 for s in change.steps)


def test_volume_app_updates_stop_first() -> None:
    """Two replicas cannot share a named volume, so the old one stops first."""
    vol = [{"name": "data", "mountPath": "/data"}]
    old = desired_app("db", volumes=vol, command=["a"])
    new = desired_app("db", volumes=vol, command=["b"])
    (change,) = make_plan(desired(new), observed(container(old, 0))).changes
    assert change.action == "update"
    assert change.steps[0].start_first is False


def test_replica_count_change_is_a_scale_not_an_update() -> None:
    """Scaling adds replicas without touching the running ones (replicas is not hashed)."""
    two = desired_app("web", replicas=2)
    three = desired_app("web", replicas=3)
    assert two.spec_hash == three.spec_hash
    (change,) = make_plan(desired(three), observed(container(two, 0), container(two, 1))).changes
    assert change.action == "scale"
    assert [s.index for s in change.steps] == [2]
    assert ("spec.replicas", 2, 3) in [(f.path, f.before, f.after) for f in change.fields]
    assert "scale up: add 1 replica(s) to reach 3" in change.reasons


def test_scale_down_removes_highest_replicas() -> None:
    """Replicas above the count are removed, the others untouched."""
    two = desired_app("web", replicas=2)
    one = desired_app("web", replicas=1)
    c0, c1 = container(two, 0), container(two, 1)
    (change,) = make_plan(desired(one), observed(c0, c1)).changes
    assert change.action == "scale"
    assert change.remove == (c1.id,)
    assert change.steps == ()


def test_missing_replica_is_healed() -> None:
    """A replica removed behind trueup's back (docker rm -f) is a heal."""
    web = desired_app("web", replicas=2)
    (change,) = make_plan(desired(web), observed(container(web, 0))).changes
    assert change.action == "heal"
    assert change.reasons == ("replica 1 missing",)
    assert [s.index for s in change.steps] == [1]


@pytest.mark.parametrize(
    ("policy", "code", "action"),
    [
        ("always", 137, "heal"),
        ("always", 0, "heal"),
        ("on-failure", 1, "heal"),
        ("on-failure", 0, None),
        ("never", 1, None),
    ],
)
def test_exited_replica_heals_by_restart_policy(policy: str, code: int, action: str | None) -> None:
    """An exited container is replaced unless its restart policy says it may stay down."""
    web = desired_app("web", restartPolicy=policy)
    dead = container(web, 0, state="exited", exit_code=code)
    plan = make_plan(desired(web), observed(dead))
    if action is None:
        assert plan.in_sync
    else:
        (change,) = plan.changes
        assert change.action == action
        assert change.reasons == (f"replica 0 exited (code {code})",)
        assert change.steps[0].retire == (dead.id,)
        assert change.steps[0].start_first is False


def test_unhealthy_replica_is_healed() -> None:
    """A running but unhealthy replica is replaced."""
    web = desired_app("web", healthCheck={"exec": ["true"]})
    (change,) = make_plan(desired(web), observed(container(web, 0, health="unhealthy"))).changes
    assert change.action == "heal"
    assert change.reasons == ("replica 0 is unhealthy",)


def test_starting_replica_is_left_alone() -> None:
    """A replica whose health check has not reported yet is not replaced."""
    web = desired_app("web", healthCheck={"exec": ["true"]})
    assert make_plan(desired(web), observed(container(web, 0, health="starting"))).in_sync


def test_app_gone_from_git_is_deleted() -> None:
    """Containers of an app no longer in git are pruned (volumes are never in the plan)."""
    web, old = desired_app("web"), desired_app("old", replicas=2)
    plan = make_plan(
        desired(web), observed(container(web, 0), container(old, 0), container(old, 1))
    )
    (change,) = plan.changes
    assert change.action == "delete" and change.app == "old"
    assert len(change.remove) == 2


def test_prune_suspended_when_a_manifest_failed_to_load() -> None:
    """A broken file might be the one declaring the app: never prune on a partial view."""
    web, old = desired_app("web"), desired_app("old")
    plan = make_plan(desired(web, load_failed=True), observed(container(web, 0), container(old, 0)))
    assert plan.in_sync
    assert [(s.app, s.reason) for s in plan.skipped] == [
        ("old", "not in git, but pruning is suspended: a manifest failed to load")
    ]


def test_invalid_app_keeps_running() -> None:
    """An app whose manifest is invalid is left as it runs."""
    web, broken = desired_app("web"), desired_app("broken")
    state = desired(web, invalid={"broken"})
    plan = make_plan(state, observed(container(web, 0), container(broken, 0)))
    assert plan.in_sync
    assert plan.skipped[0].reason == "manifest invalid: left running as it is"


def test_no_prune_flag() -> None:
    """--no-prune leaves apps gone from git alone."""
    web, old = desired_app("web"), desired_app("old")
    plan = make_plan(desired(web), observed(container(web, 0), container(old, 0)), prune=False)
    assert plan.in_sync and plan.skipped[0].reason == "not in git; pruning is off"


def test_deleting_every_app_is_refused_unless_allowed() -> None:
    """An empty desired state (a wrong --path?) must not wipe the host."""
    a, b = desired_app("a"), desired_app("b")
    running = observed(container(a, 0), container(b, 0))
    refused = make_plan(desired(), running)
    assert refused.changes == () and not refused.in_sync  # nothing deleted, still out of sync
    assert "refusing to delete every managed app (2)" in refused.notes[0]
    allowed = make_plan(desired(), running, allow_empty=True)
    assert [c.action for c in allowed.changes] == ["delete", "delete"]


def test_suspended_app_is_left_alone() -> None:
    """suspend: true means no change at all, even when the spec differs."""
    old = desired_app("web", command=["a"])
    new = desired_app("web", command=["b"], suspend=True)
    plan = make_plan(desired(new), observed(container(old, 0)))
    assert plan.in_sync and plan.skipped[0].reason.startswith("suspended")


def test_interrupted_update_is_finished_not_restarted() -> None:
    """After a crash mid-update (old and new both present), await the new, retire the old."""
    old = desired_app("web", command=["a"])
    new = desired_app("web", command=["b"])
    c_old, c_new = container(old, 0, age=0), container(new, 0, age=5)
    (change,) = make_plan(desired(new), observed(c_old, c_new)).changes
    assert change.action == "update"
    (step,) = change.steps
    assert (step.start, step.await_id, step.retire) == (False, c_new.id, (c_old.id,))


def test_duplicate_current_replicas_are_removed() -> None:
    """Two containers of the same spec at one index: keep the best, remove the other."""
    web = desired_app("web")
    a, b = container(web, 0, age=0), container(web, 0, age=1)
    (change,) = make_plan(desired(web), observed(a, b)).changes
    assert change.action == "heal"
    assert change.remove == (a.id,)


def test_secret_change_is_masked() -> None:
    """A rotated secret rolls the app; the diff says so without showing any value."""
    ref = {"DB_PASSWORD": {"secretRef": {"name": "db", "key": "password"}}}
    old = desired_app("web", SecretStore({"db": {"password": "hunter2"}}), env=ref)
    new = desired_app("web", SecretStore({"db": {"password": "correct horse"}}), env=ref)
    assert old.spec_hash != new.spec_hash
    (change,) = make_plan(desired(new), observed(container(old, 0))).changes
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.env.DB_PASSWORD", "(secret)", "(secret changed)")
    ]
    assert "hunter2" not in repr(change) and "correct horse" not in repr(change)


def test_changes_follow_depends_on() -> None:
    """Dependencies come first, then dependents; independent apps by name; deletes last."""
    db = desired_app("db")
    api = desired_app("api", dependsOn=["db"])
    web = desired_app("web", dependsOn=["api"])
    zed = desired_app("zed")
    gone = desired_app("gone")
    plan = make_plan(desired(web, api, db, zed), observed(container(gone, 0)))
    assert [c.app for c in plan.changes] == ["db", "api", "web", "zed", "gone"]


def test_plan_is_deterministic() -> None:
    """The same inputs give an equal plan, whatever the order containers were listed in."""
    old = desired_app("web", replicas=3, command=["a"])
    new = desired_app("web", replicas=2, command=["b"])
    rows = [container(old, i) for i in range(3)]
    one = make_plan(desired(new), observed(*rows))
    two = make_plan(desired(new), observed(*reversed(rows)))
    assert one == two


def test_stored_spec_without_env_never_shows_a_digest() -> None:
    """A container whose stored spec has no ``env`` at all (an older label): the secret
    variable shows as ``(secret changed)``, in the plan and in the printed diff."""
    store = SecretStore({"db": {"password": "hunter2"}})
    ref = {"DB_PASSWORD": {"secretRef": {"name": "db", "key": "password"}}, "MODE": "x"}
    new = desired_app("web", store, env=ref)
    old = container(desired_app("web"), 0)
    stored = json.loads(old.labels[L.SPEC])
    del stored["env"]
    old = dataclasses.replace(old, labels={**old.labels, L.SPEC: json.dumps(stored)})
    (change,) = make_plan(desired(new), observed(old)).changes
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.env.DB_PASSWORD", None, "(secret changed)"),
        ("spec.env.MODE", None, "x"),
    ]
    text = "\n".join(change_lines(change, colour=False))
    assert "spec.env.DB_PASSWORD: (secret changed)" in text
    digest = new.spec["env"]["DB_PASSWORD"]["digest"]
    assert digest not in text and digest not in plan_json_text(
        make_plan(desired(new), observed(old)), []
    )
