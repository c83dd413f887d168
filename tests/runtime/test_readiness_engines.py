"""Readiness without a health check on the real engines: a start-first replacement that
listens on its declared port takes over as soon as it does (not after the settle window); one
that dies at once never listens, fails, and leaves the old version serving; one that never
listens on its port is ready after the window, as an app without ports is."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.desired.resolve import DesiredApp, DesiredState
from controller.runtime import Runtime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from controller.targets.runner import Outcome
from tests.builders import desired_app

pytestmark = pytest.mark.integration

PORTS = [{"name": "http", "containerPort": 8080}]
SERVE = "exec httpd -f -p 8080"


def app(release: str, command: str = SERVE, **spec: Any) -> DesiredApp:
    return desired_app(
        "web",
        command=["sh", "-c", command],
        env={"RELEASE": release},
        ports=PORTS,
        init=True,
        stopGracePeriod="1s",
        **spec,
    )


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


async def apply(runtime: Runtime, instance: str, want: DesiredApp, settle_s: float) -> Outcome:
    state = DesiredState(revision="r1", apps={"web": want})
    plan = make_plan(state, observe(await runtime.list()))
    applier = Applier(
        runtime, state, instance=instance, read_context=_no_context, settle_s=settle_s
    )
    (outcome,) = await asyncio.wait_for(applier.run(plan), 60)
    return outcome


async def web(runtime: Runtime) -> list[tuple[str, str]]:
    """(id, state) of web's containers."""
    return [(c.id, c.state) for c in await runtime.list() if c.app == "web"]


async def test_a_replacement_that_listens_takes_over_without_the_settle_window(
    real_runtime: Runtime, instance: str
) -> None:
    """A 300 s settle window: both the create and the start-first replacement finish within
    the test's 60 s bound, because httpd accepted on 8080 first."""
    assert (await apply(real_runtime, instance, app("1"), settle_s=300)).ok
    ((old, _),) = await web(real_runtime)
    assert (await apply(real_runtime, instance, app("2"), settle_s=300)).ok
    ((new, state),) = await web(real_runtime)
    assert new != old and state == "running"


async def test_a_replacement_that_dies_at_once_fails_and_the_old_one_serves(
    real_runtime: Runtime, instance: str
) -> None:
    assert (await apply(real_runtime, instance, app("1"), settle_s=0.5)).ok
    before = await web(real_runtime)
    dies = app("2", "exit 3", restartPolicy="never")
    failed = await apply(real_runtime, instance, dies, settle_s=0.5)
    assert not failed.ok and "exit code 3" in failed.message, failed.message
    assert await web(real_runtime) == before  # the old container, still running


async def test_a_replacement_that_never_listens_is_ready_after_the_window(
    real_runtime: Runtime, instance: str
) -> None:
    assert (await apply(real_runtime, instance, app("1", "exec sleep 3600"), settle_s=0.5)).ok
    ((_, state),) = await web(real_runtime)
    assert state == "running"
