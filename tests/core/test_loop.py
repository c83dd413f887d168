"""The controller loop's policies with an injected clock: backoff, isolation, coalescing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.history import History
from controller.loop import Backoff, Controller, Work
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from tests.gitutil import commit_files, make_repo


class ManualClock:
    """Time moves only when a test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def manifest(name: str, image: str) -> str:
    return (
        f"apiVersion: trueup/v1\nkind: App\nmetadata: {{name: {name}}}\n"
        f"spec: {{image: '{image}'}}\n"
    )


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    """1 s doubling to the cap, with jitter between half and all of the step; success resets."""
    clock = ManualClock()
    backoff = Backoff(initial=1.0, maximum=8.0, clock=clock, random=lambda: 1.0)
    assert [backoff.failed("web", "h") for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    low = Backoff(initial=1.0, maximum=8.0, clock=clock, random=lambda: 0.0)
    assert [low.failed("web", "h") for _ in range(3)] == [0.5, 1.0, 2.0]
    backoff.succeeded("web")
    assert backoff.failures("web") == 0 and backoff.next_deadline() is None


def test_work_coalesces_triggers() -> None:
    """Triggers during a pass become one follow-up pass naming all of them."""
    work = Work()
    work.mark("event:die", "web")
    work.mark("event:die", "api")
    work.mark("revision")
    assert work.take() == (True, {"web", "api"}, "event:die,revision")
    assert not work.pending


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, FakeRuntime, ManualClock, Controller]:
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/good.yaml": manifest("good", "busybox:1.36"),
                     "apps/bad.yaml": manifest("bad", "missing:1")})  # fmt: skip
    runtime = FakeRuntime(instance="t", images=["busybox:1.36", "busybox:1.37"])
    clock = ManualClock()
    source = GitSource(str(repo), state_dir=tmp_path / "state")
    controller = Controller(
        Reconciler(source, runtime, instance="t"),
        runtime,
        watcher=None,
        history=History(tmp_path / "state" / "history.db"),
        interval=600,
        clock=clock,
        random=lambda: 1.0,
    )
    return repo, runtime, clock, controller


async def test_failing_app_backs_off_while_others_converge(
    setup: tuple[Path, FakeRuntime, ManualClock, Controller],
) -> None:
    """A permanently failing app is retried at 1, 2, 4 s...; the good app is never held up."""
    repo, runtime, clock, controller = setup
    result = await controller.run_pass(full=True, apps=set(), trigger="startup")
    assert result is not None
    assert {o.app: o.ok for o in result.outcomes} == {"bad": False, "good": True}
    assert controller.backoff.failures("bad") == 1

    clock.advance(0.5)  # still inside the 1 s backoff: bad is held, nothing retried
    before = runtime.calls["image_exists"]
    result = await controller.run_pass(full=True, apps=set(), trigger="resync")
    assert result is not None and result.outcomes == []
    assert ("bad", "held: backing off after a failure") in [
        (s.app, s.reason) for s in result.plan.skipped
    ]
    assert runtime.calls["image_exists"] == before
    assert controller.status["bad"].status.sync == "OutOfSync"  # held is not in sync

    commit_files(repo, {"apps/good.yaml": manifest("good", "busybox:1.37")}, "bump good")
    result = await controller.run_pass(full=True, apps=set(), trigger="revision")
    assert result is not None and [(o.app, o.ok) for o in result.outcomes] == [("good", True)]

    delays = []
    for _ in range(3):
        deadline = controller.backoff.next_deadline()
        assert deadline is not None
        delays.append(round(deadline - clock.now(), 3))
        clock.advance(deadline - clock.now())
        result = await controller.run_pass(full=False, apps={"bad"}, trigger="retry")
        assert result is not None and [(o.app, o.ok) for o in result.outcomes] == [("bad", False)]
    assert delays == [0.5, 2.0, 4.0]
    assert controller.status["bad"].status.sync == "OutOfSync"
    assert controller.status["good"].status.sync == "Synced"


async def test_new_revision_retries_a_backing_off_app_at_once(
    setup: tuple[Path, FakeRuntime, ManualClock, Controller],
) -> None:
    """A commit that changes the failing app clears its backoff: no waiting for the timer."""
    repo, _, _, controller = setup
    await controller.run_pass(full=True, apps=set(), trigger="startup")
    assert controller.backoff.failures("bad") == 1
    commit_files(repo, {"apps/bad.yaml": manifest("bad", "busybox:1.36")}, "fix bad")
    result = await controller.run_pass(full=True, apps=set(), trigger="revision")
    assert result is not None and [(o.app, o.ok) for o in result.outcomes] == [("bad", True)]
    assert controller.backoff.failures("bad") == 0


async def test_engine_outage_never_prunes_and_is_recorded(
    setup: tuple[Path, FakeRuntime, ManualClock, Controller],
) -> None:
    """While the engine is unreachable no plan is made; the pass is recorded as an error."""
    _, runtime, _, controller = setup
    await controller.run_pass(full=True, apps=set(), trigger="startup")
    count = len(runtime.containers())
    runtime.unavailable = True
    assert await controller.run_pass(full=True, apps=set(), trigger="resync") is None
    assert controller.last_error is not None and "unreachable" in controller.last_error
    runtime.unavailable = False
    result = await controller.run_pass(full=True, apps=set(), trigger="engine-retry")
    assert result is not None
    assert len(runtime.containers()) == count
    assert controller.history is not None
    assert [p["result"] for p in controller.history.passes(limit=3)] == ["noop", "error", "failed"]


async def test_event_pass_acts_only_on_that_app(
    setup: tuple[Path, FakeRuntime, ManualClock, Controller],
) -> None:
    """A die event for one app reconciles just that app, even when others drift too."""
    _, runtime, clock, controller = setup
    await controller.run_pass(full=True, apps=set(), trigger="startup")
    clock.advance(1000)  # bad's backoff has expired, so only `only` keeps it out
    (good,) = [c for c in runtime.containers() if c.app == "good"]
    runtime.crash(good.id, exit_code=1)
    result = await controller.run_pass(full=False, apps={"good"}, trigger="event:die")
    assert result is not None
    assert [(o.app, o.action) for o in result.outcomes] == [("good", "heal")]
    assert controller.status["good"].status.sync == "Synced"
    assert controller.status["bad"].status.sync == "OutOfSync"  # left for a full pass


async def test_an_applying_pass_observes_the_host_twice_at_most(
    setup: tuple[Path, FakeRuntime, ManualClock, Controller],
) -> None:
    """One list before planning, one after apply shared by routes and status; a no-op pass
    lists once."""
    _, runtime, _, controller = setup
    runtime.calls.clear()
    await controller.run_pass(full=True, apps=set(), trigger="startup")
    assert runtime.calls["list"] == 2
    runtime.calls.clear()
    await controller.run_pass(full=False, apps={"good"}, trigger="resync")
    assert runtime.calls["list"] == 1
