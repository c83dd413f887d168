"""The settle of an app without a health check, on the real engines: a replacement must run
for the whole window without dying, also when its restart policy brings it back at once (a
start-first update whose replacement died leaves the old container serving); one that runs
through the window converges.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.desired.resolve import DesiredApp, DesiredState
from controller.runtime import Runtime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import desired_app

pytestmark = pytest.mark.integration

SERVE = ["httpd", "-f", "-p", "8080"]
# dies 0.1 s after its first start; once restarted (its file system kept) it serves
CRASH_ONCE = (
    "if [ -e /tmp/started ]; then exec httpd -f -p 8080; fi; touch /tmp/started; sleep 0.1; exit 3"
)


def app(command: list[str], **spec: Any) -> DesiredApp:
    return desired_app("web", command=command, init=True, stopGracePeriod="1s", **spec)


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


async def apply(runtime: Runtime, instance: str, want: DesiredApp, revision: str) -> list[Any]:
    desired = DesiredState(revision=revision, apps={want.name: want})
    plan = make_plan(desired, observe(await runtime.list()), allow_empty=True)
    applier = Applier(runtime, desired, instance=instance, read_context=_no_context)
    return await applier.run(plan)


async def test_a_replacement_that_died_and_was_restarted_fails(
    real_runtime: Runtime, instance: str
) -> None:
    """restart: always brings a crashed replacement back within the window: it still died,
    so the update fails and the old container keeps serving."""
    (first,) = await apply(real_runtime, instance, app(SERVE, restartPolicy="always"), "r1")
    assert first.ok, first
    (old,) = [c.id for c in await real_runtime.list()]
    crashing = app(["sh", "-c", CRASH_ONCE], restartPolicy="always")
    (outcome,) = await apply(real_runtime, instance, crashing, "r2")
    assert not outcome.ok, outcome
    assert "restarted" in outcome.message or "exit" in outcome.message, outcome.message
    rows = await real_runtime.list()
    assert [c.id for c in rows] == [old]
    assert rows[0].running


async def test_a_healthy_replacement_converges(real_runtime: Runtime, instance: str) -> None:
    """A replacement that runs through the window converges (its restart count is 0)."""
    (first,) = await apply(real_runtime, instance, app(SERVE), "r1")
    assert first.ok, first
    (outcome,) = await apply(real_runtime, instance, app(SERVE, env={"R": "2"}), "r2")
    assert outcome.ok, outcome
    rows = await real_runtime.list()
    assert len(rows) == 1 and rows[0].running and rows[0].labels["trueup.revision"] == "r2"
