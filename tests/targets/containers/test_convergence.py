"""Property: applying a plan to the in-memory runtime converges; planning is idempotent.

Random desired states are applied on top of random prior states (an older desired state
applied, then containers crashed, removed or made unhealthy behind trueup's back).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.desired.resolve import DesiredApp, DesiredState
from controller.runtime.fake import FakeRuntime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import desired_app

NAMES = ["api", "db", "web", "worker"]

app_specs = st.fixed_dictionaries(
    {
        "replicas": st.integers(min_value=0, max_value=3),
        "env": st.dictionaries(
            st.sampled_from(["A", "B"]), st.sampled_from(["1", "2"]), max_size=2
        ),
        "restartPolicy": st.sampled_from(["always", "on-failure", "never"]),
        "healthCheck": st.sampled_from([None, {"exec": ["true"]}]),
        "update": st.sampled_from([{"strategy": "start-first"}, {"strategy": "stop-first"}]),
    }
)
states = st.dictionaries(st.sampled_from(NAMES), app_specs, max_size=4)
perturbations = st.lists(
    st.tuples(st.sampled_from(["crash", "remove", "unhealthy"]), st.integers(0, 20)), max_size=4
)


def build(apps: dict[str, dict[str, Any]]) -> DesiredState:
    made: dict[str, DesiredApp] = {}
    for name, spec in apps.items():
        clean = {k: v for k, v in spec.items() if v is not None}
        made[name] = desired_app(name, **clean)
    return DesiredState(revision="r", apps=made)


async def converge(runtime: FakeRuntime, desired: DesiredState) -> None:
    plan = make_plan(desired, observe(await runtime.list()), allow_empty=True)
    applier = Applier(
        runtime, desired, instance="test", read_context=_no_context, settle_s=0, health_slack_s=0
    )
    outcomes = await applier.run(plan)
    assert all(o.ok for o in outcomes), outcomes


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states, states, perturbations)
def test_apply_then_plan_is_empty(before: dict[str, Any], after: dict[str, Any], harm: Any) -> None:
    """Whatever ran before and whatever broke, one apply reaches the desired state."""

    async def scenario() -> None:
        runtime = FakeRuntime(instance="test", images=["busybox:1.36"])
        runtime.start_health = "healthy"
        await converge(runtime, build(before))
        containers = runtime.containers()
        for action, pick in harm:
            if not containers:
                break
            victim = containers[pick % len(containers)]
            if action == "remove":
                await runtime.remove(victim.id)
                containers = runtime.containers()
            elif action == "crash" and victim.running:
                runtime.crash(victim.id, exit_code=pick % 3)
            elif action == "unhealthy" and victim.running:
                runtime.set_health(victim.id, "unhealthy")
        desired = build(after)
        first = make_plan(desired, observe(await runtime.list()), allow_empty=True)
        assert first == make_plan(desired, observe(await runtime.list()), allow_empty=True)
        await converge(runtime, desired)
        again = make_plan(desired, observe(await runtime.list()), allow_empty=True)
        assert again.in_sync, again.changes
        rows = await runtime.list()
        assert {r.app for r in rows} <= set(desired.apps)
        for name, want in desired.apps.items():
            mine = sorted((r for r in rows if r.app == name), key=lambda r: r.replica or 0)
            assert [r.replica for r in mine] == list(range(want.replicas)), name
            for row in mine:
                assert row.labels["trueup.spec-hash"] == want.spec_hash
                policy = want.manifest.spec.restart_policy
                may_rest = policy == "never" or (policy == "on-failure" and row.exit_code == 0)
                if not may_rest:
                    assert row.running and row.health != "unhealthy", row

    asyncio.run(scenario())
