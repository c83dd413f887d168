"""The controller loop's policies with an injected clock: backoff, isolation, coalescing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from controller.daemon.backoff import Backoff
from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.daemon.work import Work
from controller.http.metrics import Metrics
from controller.reconciler import Reconciler
from controller.runtime.base import ContainerInfo
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
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
        Reconciler(source, ContainerTarget(runtime), instance="t"),
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


class ListRaisesOnce(FakeRuntime):
    """An engine adapter whose next ``list`` raises something no adapter should (a bug)."""

    armed = False

    async def list(self) -> list[ContainerInfo]:
        if self.armed:
            self.armed = False
            self.calls["list"] += 1
            raise RuntimeError("adapter bug: unexpected reply")
        return await super().list()


async def until(check: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.01)


async def test_a_pass_that_raises_anything_is_recorded_and_retried_with_backoff(
    tmp_path: Path,
) -> None:
    """A RuntimeError out of a pass does not end `run`: the pass is recorded as an error
    (history, last_error, metrics), logged with its traceback, and retried after the
    backoff (not before), which then converges."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/good.yaml": manifest("good", "busybox:1.36")})
    runtime = ListRaisesOnce(instance="t", images=["busybox:1.36"])
    runtime.armed = True
    clock = ManualClock()
    history = History(tmp_path / "state" / "history.db")
    controller = Controller(
        Reconciler(
            GitSource(str(repo), state_dir=tmp_path / "state"),
            ContainerTarget(runtime),
            instance="t",
        ),
        runtime,
        watcher=None,
        history=history,
        interval=600,
        clock=clock,
        random=lambda: 1.0,
    )
    metrics = Metrics(process=False)
    metrics.attach(controller)
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(controller.run(stop))
        await until(lambda: controller.passes == 1, "the failed pass")
        assert (
            controller.last_error == "internal error: RuntimeError: adapter bug: unexpected reply"
        )
        [crash] = [e for e in logs if e["event"] == "reconcile_crashed"]
        assert crash["retry_in_s"] == 1.0 and crash["error_type"] == "RuntimeError"
        assert isinstance(crash["exc_info"], RuntimeError)  # rendered as a traceback
        await asyncio.sleep(0.1)
        assert controller.passes == 1 and not task.done()  # waits out its backoff
        clock.advance(1.0)
        await until(lambda: controller.first_pass_done.is_set(), "the retried pass")
        stop.set()
        await asyncio.wait_for(task, 5)
    passes = history.passes(limit=5)
    assert [(p["trigger"], p["result"]) for p in passes] == [
        ("error-retry", "changed"),
        ("startup", "error"),
    ]
    assert "RuntimeError: adapter bug" in passes[1]["message"]
    assert controller.last_error is None
    assert metrics.reconcile_total.labels("error")._value.get() == 1
    assert controller.status["good"].status.sync == "Synced"
    history.close()


class VanishesAfterApply(FakeRuntime):
    """An engine that goes away right after it created and started a container."""

    async def start(self, container: str) -> None:
        await super().start(container)
        self.vanish_at_next_list = True

    async def list(self) -> list[ContainerInfo]:
        if getattr(self, "vanish_at_next_list", False):
            self.vanish_at_next_list = False
            self.unavailable = True
        return await super().list()


async def test_engine_lost_right_after_apply_is_recorded_and_retried(tmp_path: Path) -> None:
    """The engine goes away between apply and the observation after it: the pass returns
    (what it applied is in the history), counts as an error with last_error set, schedules an
    engine retry, and the retry once the engine is back sets the status straight."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/good.yaml": manifest("good", "busybox:1.36")})
    runtime = VanishesAfterApply(instance="t", images=["busybox:1.36"])
    clock = ManualClock()
    history = History(tmp_path / "state" / "history.db")
    controller = Controller(
        Reconciler(
            GitSource(str(repo), state_dir=tmp_path / "state"),
            ContainerTarget(runtime),
            instance="t",
        ),
        runtime,
        watcher=None,
        history=history,
        interval=600,
        clock=clock,
        random=lambda: 1.0,
        status_file=tmp_path / "state" / "status.json",
    )
    result = await controller.run_pass(full=True, apps=set(), trigger="startup")
    assert result is not None and [(o.app, o.ok) for o in result.outcomes] == [("good", True)]
    assert runtime.unavailable
    assert controller.last_error is not None
    assert controller.last_error.startswith("observing the engine after apply: list:")
    assert not controller.first_pass_done.is_set()
    [record] = history.passes(limit=5)
    assert (record["result"], record["changes"]) == ("error", 1)
    assert [(a["app"], a["kind"], a["result"]) for a in history.actions()] == [
        ("good", "create", "ok")
    ]
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["last_error"] == controller.last_error

    assert controller.pass_retry.retry_at == clock.now() + 1.0
    runtime.unavailable = False
    result = await controller.run_pass(full=True, apps=set(), trigger="engine-retry")
    assert result is not None and result.outcomes == []
    assert controller.last_error is None and controller.first_pass_done.is_set()
    assert controller.status["good"].status.sync == "Synced"
    assert controller.status["good"].status.health == "Healthy"
    history.close()


async def test_keyboard_interrupt_and_system_exit_still_end_a_pass(tmp_path: Path) -> None:
    """The pass boundary catches every Exception, never the BaseExceptions that mean stop."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/good.yaml": manifest("good", "busybox:1.36")})
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
        clock=ManualClock(),
    )
    for stop in (KeyboardInterrupt, SystemExit):

        async def stopping(stop: type[BaseException] = stop) -> list[ContainerInfo]:
            raise stop()

        runtime.list = stopping  # type: ignore[method-assign]
        with pytest.raises(stop):
            await controller.run_pass(full=True, apps=set(), trigger="startup")
