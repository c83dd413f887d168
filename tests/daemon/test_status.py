"""`derive_status`: what `trueup run` reports per app after a pass, from the observation, the
desired state, the plan and the outcomes. Pure: builders and the container plan, no engine."""

from __future__ import annotations

from controller.daemon.status import AppStatus, derive_status, summarize
from controller.desired.resolve import DesiredState
from controller.planning import PlanOptions
from controller.runtime.base import ContainerInfo
from controller.targets.containers.plan import ContainerObservation, container_plan
from controller.targets.observed import Rollout
from controller.targets.runner import Outcome
from tests.builders import container, desired, desired_app


def statuses(
    state: DesiredState,
    *rows: ContainerInfo,
    outcomes: tuple[Outcome, ...] = (),
    rollouts: dict[str, Rollout] | None = None,
) -> dict[str, AppStatus]:
    seen = ContainerObservation(rows, rollouts or {})
    plan = container_plan(state, seen.state, PlanOptions())
    return {s.name: s for s in derive_status(seen, state, plan, outcomes)}


def test_an_app_running_its_desired_spec_is_synced_and_healthy() -> None:
    """Every replica of the desired spec runs: Synced, Healthy, 2/2 ready."""
    web = desired_app("web", replicas=2)
    (status,) = statuses(desired(web), container(web, 0), container(web, 1)).values()
    assert (status.sync, status.health, status.ready, status.desired) == ("Synced", "Healthy", 2, 2)
    assert status.message == "2/2 ready"


def test_a_pending_change_is_out_of_sync_and_a_missing_app_is_missing() -> None:
    """A changed spec still running the old one: OutOfSync. No container yet: Missing, with
    the desired replica count from git."""
    old, new = desired_app("web", env={"A": "1"}), desired_app("web", env={"A": "2"})
    api = desired_app("api", replicas=3)
    found = statuses(desired(new, api), container(old, 0))
    assert (found["web"].sync, found["web"].health) == ("OutOfSync", "Healthy")
    assert (found["api"].sync, found["api"].health, found["api"].desired) == (
        "OutOfSync",
        "Missing",
        3,
    )


def test_a_failed_update_leaves_the_old_version_serving_as_degraded() -> None:
    """The change failed while the old replica serves: OutOfSync, Degraded, the error named."""
    old, new = desired_app("web", env={"A": "1"}), desired_app("web", env={"A": "2"})
    failed = Outcome("web", "update", False, "web-1 failed its health check\nmore", 1.0)
    (status,) = statuses(desired(new), container(old, 0), outcomes=(failed,)).values()
    assert (status.sync, status.health) == ("OutOfSync", "Degraded")
    assert status.message.endswith("; last error: web-1 failed its health check")


def test_an_app_that_converged_in_the_pass_is_synced() -> None:
    """A change whose outcome is ok no longer counts as pending."""
    old, new = desired_app("web", env={"A": "1"}), desired_app("web", env={"A": "2"})
    done = Outcome("web", "update", True, "converged", 1.0)
    (status,) = statuses(desired(new), container(old, 0), outcomes=(done,)).values()
    assert status.sync == "Synced"


def test_invalid_unresolvable_suspended_and_refused_apps() -> None:
    """An invalid manifest or an unresolvable app: Unknown with why. Suspended: Suspended.
    An app git no longer declares, whose deletion was refused: OutOfSync saying so."""
    paused = desired_app("paused", suspend=True)
    gone = desired_app("gone")
    state = desired(paused, errors={"db": "secret db missing"}, invalid={"broken"})
    found = statuses(state, container(paused, 0), container(gone, 0))
    assert (found["db"].sync, found["db"].message) == ("Unknown", "secret db missing")
    assert (found["broken"].sync, found["broken"].message) == ("Unknown", "manifest invalid")
    assert found["paused"].health == "Suspended"
    alone = statuses(desired(), container(gone, 0))["gone"]
    assert alone.sync == "OutOfSync" and "--allow-empty" in alone.message


def test_the_engines_rollout_leads_health_and_message() -> None:
    """What the engine says of a rollout beyond the rows: a failed one is Degraded, one in
    progress is Progressing while the rows look healthy; its message comes first."""
    web, api = desired_app("web"), desired_app("api")
    rollouts = {
        "web": Rollout(True, "update rolled back: task failed"),
        "api": Rollout(False, "update in progress"),
    }
    found = statuses(desired(web, api), container(web, 0), container(api, 0), rollouts=rollouts)
    assert found["web"].health == "Degraded"
    assert found["web"].message == "1/1 ready; update rolled back: task failed"
    assert (found["api"].health, found["api"].message) == (
        "Progressing",
        "1/1 ready; update in progress",
    )
    alone = {s.name: s for s in summarize(ContainerObservation((container(web, 0),), rollouts))}
    assert alone["web"].sync == "Unknown" and alone["web"].health == "Degraded"
