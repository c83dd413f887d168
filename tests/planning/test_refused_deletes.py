"""A pass that would delete every app is refused, and says so: out of sync, never "nothing to do".

Pure core: the container and Swarm plans, their text and JSON, and the controller loop's status
and metrics on the in-memory FakeRuntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.cli.render import plan_json, plan_text
from controller.daemon.loop import Controller
from controller.desired.resolve import DesiredApp
from controller.http.metrics import Metrics
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.runtime.swarm_base import ServiceInfo
from controller.source import GitSource
from controller.targets.containers.plan import make_plan
from controller.targets.containers.target import ContainerTarget
from controller.targets.observed import ObservedState
from controller.targets.swarm.plan import make_swarm_plan, service_spec
from tests.builders import container, desired, desired_app, observed
from tests.gitutil import commit_files, git, make_repo


def service(want: DesiredApp) -> ServiceInfo:
    """The Swarm service trueup would have created for ``want`` (instance ``test``)."""
    spec = service_spec(want, instance="test", revision="r0")
    return ServiceInfo(
        id=f"id-{spec.name}",
        name=spec.name,
        labels=dict(spec.labels),
        image=spec.image,
        replicas=spec.replicas,
        version=1,
        update_order=spec.order,
    )


def test_refused_plan_is_out_of_sync_and_names_the_refused_deletes() -> None:
    """Git declares no app while two run: nothing is deleted, yet the plan is not in sync and
    lists both deletes as refused, saying how to allow them."""
    a, b = desired_app("a"), desired_app("b")
    plan = make_plan(desired(), observed(container(a, 0), container(b, 0)))
    assert plan.changes == ()
    assert not plan.in_sync
    assert [(c.app, c.action) for c in plan.refused] == [("a", "delete"), ("b", "delete")]
    assert all("--allow-empty" in c.reasons[-1] for c in plan.refused)


def test_refused_swarm_plan_is_out_of_sync_too() -> None:
    """The Swarm planner shares the refusal: no delete, not in sync, both services refused."""
    a, b = desired_app("a"), desired_app("b")
    plan = make_swarm_plan(desired(), (service(a), service(b)), ObservedState(), instance="test")
    assert plan.changes == ()
    assert not plan.in_sync
    assert [(c.app, c.action) for c in plan.refused] == [("a", "delete"), ("b", "delete")]
    assert plan_json(plan, [])["in_sync"] is False


def test_refused_plan_text_and_json_say_so() -> None:
    """`trueup diff` prints no "in sync" line but the refusal and its flag; the JSON says
    in_sync false, keeps its documented keys and adds ``refused`` in the shape of a change."""
    a, b = desired_app("a"), desired_app("b")
    plan = make_plan(desired(), observed(container(a, 0), container(b, 0)))
    text = plan_text(plan, [])
    assert "in sync" not in text
    assert text.splitlines()[-1] == (
        "plan: no changes; deleting 2 app(s) refused (pass --allow-empty to allow it)"
    )
    doc = plan_json(plan, [])
    assert doc["in_sync"] is False and doc["changes"] == [] and doc["errors"] == []
    assert [(r["app"], r["action"], r["fields"]) for r in doc["refused"]] == [
        ("a", "delete", []),
        ("b", "delete", []),
    ]
    assert "--allow-empty" in doc["refused"][0]["reasons"][-1]
    allowed = plan_json(make_plan(desired(), observed(container(a, 0)), allow_empty=True), [])
    assert "refused" not in allowed and allowed["in_sync"] is False


def manifest(name: str) -> str:
    return (
        f"apiVersion: trueup/v1\nkind: App\nmetadata: {{name: {name}}}\n"
        "spec: {image: busybox:1.36}\n"
    )


async def test_controller_reports_refused_apps_out_of_sync(tmp_path: Path) -> None:
    """Under `trueup run`, apps git dropped all at once keep running, show OutOfSync with the
    refusal in their message, and trueup_app_info says OutOfSync."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/a.yaml": manifest("a"), "apps/b.yaml": manifest("b")})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    controller = Controller(
        Reconciler(
            GitSource(str(repo), state_dir=tmp_path / "state"),
            ContainerTarget(runtime),
            instance="t",
        ),
        runtime,
        watcher=None,
        history=None,
        interval=600,
        random=lambda: 1.0,
    )
    metrics = Metrics(process=False)
    metrics.attach(controller)
    assert await controller.run_pass(full=True, apps=set(), trigger="startup") is not None
    git(repo, "rm", "-q", "apps/a.yaml", "apps/b.yaml")
    commit_files(repo, {"README.md": "no apps here any more\n"}, "remove every app")
    result = await controller.run_pass(full=True, apps=set(), trigger="revision")
    assert result is not None and result.outcomes == []
    assert {c.app for c in await runtime.list()} == {"a", "b"}
    doc: Any = controller.status_json()  # what status.json, the API and `trueup status` show
    apps = {a["name"]: a for a in doc["apps"]}
    assert set(apps) == {"a", "b"}
    for app in apps.values():
        assert app["sync"] == "OutOfSync"
        assert "deletion refused" in app["message"] and "allow_empty" in app["message"]
    for name in ("a", "b"):
        labels = {"app": name, "sync_status": "OutOfSync", "health_status": "Healthy"}
        assert metrics.registry.get_sample_value("trueup_app_info", labels) == 1
