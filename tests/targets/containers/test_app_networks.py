"""App networks in a pass on the in-memory runtime: removed once no app joins them, kept
while a manifest failed to load (its app keeps running as it was)."""

from __future__ import annotations

from controller.desired.resolve import DesiredState
from controller.runtime.fake import FakeRuntime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import desired_app


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


async def apply(runtime: FakeRuntime, state: DesiredState) -> None:
    plan = make_plan(state, observe(await runtime.list()), allow_empty=True)
    applier = Applier(runtime, state, instance="test", read_context=_no_context, settle_s=0)
    assert all(o.ok for o in await applier.run(plan))


async def test_a_network_no_app_joins_is_removed_after_the_pass() -> None:
    """Deleting the only app on network b removes trueup-test-b; network a stays."""
    runtime = FakeRuntime(instance="test", images=["busybox:1.36"])
    web = desired_app("web", networks=[{"name": "a"}])
    db = desired_app("db", networks=[{"name": "b"}])
    await apply(runtime, DesiredState(revision="r1", apps={"web": web, "db": db}))
    assert {"trueup-test-a", "trueup-test-b"} <= runtime.networks
    await apply(runtime, DesiredState(revision="r2", apps={"web": web}))
    assert "trueup-test-a" in runtime.networks and "trueup-test-b" not in runtime.networks


async def test_networks_stay_while_a_manifest_failed_to_load() -> None:
    """A pass in which a manifest failed to load removes no network, as it prunes nothing."""
    runtime = FakeRuntime(instance="test", images=["busybox:1.36"])
    db = desired_app("db", networks=[{"name": "b"}])
    await apply(runtime, DesiredState(revision="r1", apps={"db": db}))
    (row,) = await runtime.list()
    await runtime.remove(row.id)  # gone behind trueup's back, and its manifest now broken
    web = desired_app("web")
    broken = DesiredState(revision="r2", apps={"web": web}, invalid={"db"}, load_failed=True)
    await apply(runtime, broken)
    assert "trueup-test-b" in runtime.networks
