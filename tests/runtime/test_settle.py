"""The settle of an app without a health check, on the real engines: a replacement must run
for the whole window without dying, also when its restart policy brings it back at once (a
start-first update whose replacement died leaves the old container serving); a reload signal
the process dies of fails the reload, also when its restart policy brings it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.desired.resolve import DesiredApp, DesiredState
from controller.reconciler import Reconciler
from controller.runtime import Runtime
from controller.source import GitSource
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.containers.target import ContainerTarget
from controller.targets.observed import observe
from tests.builders import desired_app
from tests.gitutil import commit_files, make_repo

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


RELOADED = """\
apiVersion: trueup/v1
kind: App
metadata: {name: conf}
spec:
  image: busybox:1.36
  command: [sh, -c, "while true; do sleep 0.1; done"]
  files: [{path: /etc/app/app.conf, source: config/app.conf}]
  reload: {signal: SIGHUP}
  restartPolicy: always
  init: true
  stopGracePeriod: 1s
"""


async def test_a_reload_signal_that_kills_the_process_fails_the_reload(
    real_runtime: Runtime, instance: str, tmp_path: Path
) -> None:
    """The shell dies on SIGHUP and ``restart: always`` brings it back before the check: the
    reload is reported failed, not converged."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/conf.yaml": RELOADED, "config/app.conf": "v1\n"})
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        reconciler = Reconciler(source, ContainerTarget(real_runtime), instance=instance)
        first = await reconciler.run_pass()
        assert first.outcomes and not first.failed, first.outcomes
        commit_files(repo, {"config/app.conf": "v2\n"}, "conf")
        second = await reconciler.run_pass()
    (outcome,) = second.outcomes
    assert not outcome.ok, outcome  # (Docker may already refuse the reload's rename meanwhile)
