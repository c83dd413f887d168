"""The engine-neutral per-app loop (`plan_apps`), with a toy engine whose unit is a string.

Whatever a target observes of an app, the loop alone decides which apps are skipped, deleted
or asked about; a target only says how one app differs and how one is deleted.
"""

from __future__ import annotations

from controller.desired.resolve import DesiredApp, DesiredState
from controller.planning import Change, Plan, PlanOptions, plan_apps
from controller.targets.observed import ObservedState
from tests.builders import desired, desired_app


def toy_plan(
    state: DesiredState, running: dict[str, str], options: PlanOptions | None = None
) -> tuple[Plan, list[str]]:
    """Plan ``state`` against ``running`` (app -> the image it runs); also the apps the loop
    asked ``diff`` about, in order."""
    asked: list[str] = []

    def diff(want: DesiredApp, have: str | None) -> Change | None:
        asked.append(want.name)
        if have == want.image:
            return None
        return Change(want.name, "create" if have is None else "update", (f"runs {have}",))

    def delete(name: str, have: str) -> Change:
        return Change(name, "delete", (f"gone: {have}",), remove=(have,))

    plan = plan_apps(
        state,
        running,
        diff=diff,
        delete=delete,
        routes_from=ObservedState(),
        options=options or PlanOptions(),
    )
    return plan, asked


def test_the_loop_asks_the_target_only_about_apps_git_declares() -> None:
    """Declared apps go to ``diff`` (in name order); an app only the engine has is deleted
    through ``delete``; dependencies come first and deletes last."""
    web = desired_app("web", dependsOn=["api"])
    api = desired_app("api", image="busybox:1.35")
    plan, asked = toy_plan(desired(web, api), {"web": "old", "gone": "x"})
    assert [(c.app, c.action) for c in plan.changes] == [
        ("api", "create"),
        ("web", "update"),
        ("gone", "delete"),
    ]
    assert asked == ["api", "web"]


def test_suspended_and_unprunable_apps_are_skipped_with_their_reason() -> None:
    """A suspended app is never diffed; with prune off an app gone from git stays."""
    web = desired_app("web", suspend=True)
    plan, asked = toy_plan(desired(web), {"web": "old", "gone": "x"}, PlanOptions(prune=False))
    assert plan.changes == ()
    assert {s.app: s.reason for s in plan.skipped} == {
        "gone": "not in git; pruning is off",
        "web": "suspended: reconcile leaves this app alone",
    }
    assert asked == []


def test_deleting_every_observed_app_is_refused_unless_allowed() -> None:
    """The empty-delete refusal holds for any target; ``allow_empty`` lets it through."""
    refused, _ = toy_plan(desired(), {"a": "x", "b": "y"})
    assert refused.changes == () and [c.app for c in refused.refused] == ["a", "b"]
    allowed, _ = toy_plan(desired(), {"a": "x", "b": "y"}, PlanOptions(allow_empty=True))
    assert [c.action for c in allowed.changes] == ["delete", "delete"]


def test_an_app_that_failed_to_resolve_is_left_running_and_named() -> None:
    """An app git declares but cannot resolve is neither diffed nor deleted."""
    plan, _ = toy_plan(desired(errors={"db": "secret db missing"}), {"db": "x"})
    assert plan.changes == () and plan.refused == ()
    (skip,) = plan.skipped
    assert skip.app == "db" and "secret db missing" in skip.reason
