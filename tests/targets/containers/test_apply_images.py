"""Apply makes the image available before touching containers: pull, build, or fail clearly."""

from __future__ import annotations

from controller.desired.resolve import DesiredState
from controller.runtime.fake import FakeRuntime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import desired_app


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


async def test_missing_image_is_pulled_then_run() -> None:
    """An image the engine lacks is pulled from its registry before the container starts."""
    runtime = FakeRuntime(instance="t")
    runtime.registry.add("nginx:1.27")
    want = desired_app("web", image="nginx:1.27")
    desired = DesiredState(revision="r", apps={"web": want})
    plan = make_plan(desired, observe(await runtime.list()))
    applier = Applier(runtime, desired, instance="t", read_context=_no_context, settle_s=0)
    (outcome,) = await applier.run(plan)
    assert outcome.ok, outcome.message
    assert runtime.calls["pull"] == 1
    assert [c.image for c in runtime.containers()] == ["nginx:1.27"]


async def test_unpullable_image_fails_the_app_and_touches_nothing() -> None:
    """No registry has it: the app fails permanently with the image named; nothing created."""
    runtime = FakeRuntime(instance="t")
    want = desired_app("web", image="nginx:9.99")
    desired = DesiredState(revision="r", apps={"web": want})
    plan = make_plan(desired, observe(await runtime.list()))
    applier = Applier(runtime, desired, instance="t", read_context=_no_context, settle_s=0)
    (outcome,) = await applier.run(plan)
    assert not outcome.ok and not outcome.transient
    assert "nginx:9.99" in outcome.message
    assert runtime.containers() == []


async def test_apps_sharing_an_image_check_and_pull_it_once() -> None:
    """Ten apps on one missing image: one lookup, one pull, ten containers (not ten pulls
    racing each other on the engine)."""
    runtime = FakeRuntime(instance="t")
    runtime.registry.add("nginx:1.27")
    apps = {f"web{i}": desired_app(f"web{i}", image="nginx:1.27") for i in range(10)}
    desired = DesiredState(revision="r", apps=apps)
    plan = make_plan(desired, observe(await runtime.list()))
    applier = Applier(runtime, desired, instance="t", read_context=_no_context, settle_s=0)
    outcomes = await applier.run(plan)
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    assert runtime.calls["image_exists"] == 1
    assert runtime.calls["pull"] == 1
    assert len(runtime.containers()) == 10
