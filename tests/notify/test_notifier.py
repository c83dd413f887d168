"""The notifier on real passes (FakeRuntime, real git, real SQLite history): what is news."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.notify.delivery import Result
from controller.notify.events import KINDS as EVENT_KINDS
from controller.notify.message import Notice
from controller.notify.notifier import Notifier, NotifyConfig
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.daemon.test_loop import ManualClock, manifest
from tests.gitutil import commit_files, make_repo

KINDS = frozenset(EVENT_KINDS)


@dataclass
class Inbox:
    """An honest in-memory destination: it keeps every notice it is sent."""

    name: str = "inbox"
    kinds: frozenset[str] = KINDS
    min_severity: str = "info"
    max_per_minute: int = 600
    got: list[Notice] = field(default_factory=list)

    async def send(self, notice: Notice) -> Result:
        self.got.append(notice)
        return Result("ok")


@dataclass
class Host:
    repo: Path
    state: Path
    runtime: FakeRuntime
    clock: ManualClock
    inbox: Inbox
    secrets: Path | None = None

    def controller(self) -> tuple[Controller, Notifier]:
        """A controller and its notifier, as `trueup run` wires them (a restart: new ones)."""
        source = GitSource(str(self.repo), state_dir=self.state)
        history = History(self.state / "history.db")
        reconciler = Reconciler(
            source, ContainerTarget(self.runtime), instance="t", secrets_dir=self.secrets
        )
        ctl = Controller(
            reconciler, self.runtime, watcher=None, history=history, interval=600,
            clock=self.clock, random=lambda: 1.0,
        )  # fmt: skip
        notifier = Notifier(
            NotifyConfig("t"),
            [self.inbox],
            history=history,
            subject_of=source.commit_subject,
            now=self.clock.now,
        )
        ctl.notifier = notifier
        return ctl, notifier


async def pass_and_flush(ctl: Controller, notifier: Notifier) -> None:
    await ctl.run_pass(full=True, apps=set(), trigger="resync")
    for channel in notifier.channels.values():
        while not channel.queue.empty():
            await channel.queue.get_nowait()()


def host(tmp_path: Path, files: dict[str, str]) -> Host:
    repo = tmp_path / "repo"
    make_repo(repo, files)
    runtime = FakeRuntime(instance="t", images=["busybox:1.36", "busybox:1.37"])
    return Host(repo, tmp_path / "state", runtime, ManualClock(), Inbox())


async def test_a_failure_is_told_once_then_its_recovery_and_a_restart_is_quiet(
    tmp_path: Path,
) -> None:
    """One failure message, none for five more failing passes, one recovery, none after."""
    h = host(tmp_path, {"apps/web.yaml": manifest("web", "busybox:1.36")})
    ctl, notifier = h.controller()
    await pass_and_flush(ctl, notifier)
    assert [e.kind for n in h.inbox.got for e in n.events] == ["deployed"]
    commit_files(h.repo, {"apps/web.yaml": manifest("web", "missing:1")}, "Break web")
    await pass_and_flush(ctl, notifier)
    assert len(h.inbox.got) == 2
    failure = h.inbox.got[1]
    assert [(e.app, e.kind) for e in failure.events] == [("web", "failed")]
    assert failure.subject == "Break web" and "missing:1" in failure.body()
    for _ in range(5):
        h.clock.advance(400)  # past the backoff: the app is retried and fails again
        await pass_and_flush(ctl, notifier)
    assert len(h.inbox.got) == 2
    commit_files(h.repo, {"apps/web.yaml": manifest("web", "busybox:1.37")}, "Fix web")
    await pass_and_flush(ctl, notifier)
    assert len(h.inbox.got) == 3
    assert h.inbox.got[2].lines() == ["web: recovered (image busybox:1.36 → busybox:1.37)"]
    await pass_and_flush(ctl, notifier)  # no-op
    ctl2, notifier2 = h.controller()  # a restart: same history, fresh memory
    await pass_and_flush(ctl2, notifier2)
    assert len(h.inbox.got) == 3


async def test_an_unchanged_failure_repeats_once_an_hour(tmp_path: Path) -> None:
    """After ``repeat_after`` the same failure is told again, once."""
    h = host(tmp_path, {"apps/web.yaml": manifest("web", "missing:1")})
    ctl, notifier = h.controller()
    await pass_and_flush(ctl, notifier)
    h.clock.advance(1800)
    await pass_and_flush(ctl, notifier)
    assert len(h.inbox.got) == 1
    h.clock.advance(1900)
    await pass_and_flush(ctl, notifier)
    await pass_and_flush(ctl, notifier)
    assert len(h.inbox.got) == 2


async def test_a_rotated_secret_shows_as_changed_never_its_value(tmp_path: Path) -> None:
    """The message says the secret changed; neither value appears in it."""
    app = (
        "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: busybox:1.36\n"
        "  env: {DB_PASSWORD: {secretRef: {name: db, key: password}}}\n"
    )
    h = host(tmp_path, {"apps/web.yaml": app})
    h.secrets = tmp_path / "secrets"
    h.secrets.mkdir()
    (h.secrets / "db.env").write_text("password=hunter2-old\n")
    ctl, notifier = h.controller()
    await pass_and_flush(ctl, notifier)
    (h.secrets / "db.env").write_text("password=hunter2-new\n")
    await pass_and_flush(ctl, notifier)
    assert len(h.inbox.got) == 2
    text = "\n".join([n.title() + n.body() + str(n.to_json()) for n in h.inbox.got])
    assert "(secret changed)" in text
    assert "hunter2" not in text


def test_an_older_history_gets_the_notification_tables(tmp_path: Path) -> None:
    """A database from before notifications opens, and keeps the notifier's state."""
    path = tmp_path / "history.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE passes (id INTEGER PRIMARY KEY, started_at REAL NOT NULL);")
    db.close()
    history = History(path)
    history.update_notify_state({("web", "failed"): ("abc", 1.0)}, [])
    history.record_notification(1.0, "ops", "ok", "HTTP 200")
    assert history.notify_state() == {("web", "failed"): ("abc", 1.0)}
    assert history.notifications()[0]["result"] == "ok"
    history.close()


def test_the_loop_waits_for_no_destination() -> None:
    """Offering to a full channel drops the job and records it, without waiting."""
    from controller.notify.sender import QUEUE_SIZE, Channel

    seen: list[str] = []

    async def run() -> None:
        channel = Channel("ops", max_per_minute=1, report=lambda n, r: seen.append(r.outcome))

        async def job() -> Result:
            return Result("ok")

        for _ in range(QUEUE_SIZE + 2):
            channel.offer(job)

    asyncio.run(run())
    assert seen == ["dropped", "dropped"]


async def test_an_engine_outage_is_told_past_the_threshold_then_its_recovery(
    tmp_path: Path,
) -> None:
    """Short outages are quiet; one past ``unreachable_after`` is told once, then recovered."""
    h = host(tmp_path, {"apps/web.yaml": manifest("web", "busybox:1.36")})
    ctl, notifier = h.controller()
    await pass_and_flush(ctl, notifier)
    h.runtime.unavailable = True
    for _ in range(3):
        h.clock.advance(100)
        await pass_and_flush(ctl, notifier)
    assert len(h.inbox.got) == 1
    for _ in range(3):
        h.clock.advance(150)
        await pass_and_flush(ctl, notifier)
    assert [e.kind for e in h.inbox.got[1].events] == ["unreachable"]
    assert len(h.inbox.got) == 2
    h.runtime.unavailable = False
    await pass_and_flush(ctl, notifier)
    assert h.inbox.got[2].lines() == ["controller: recovered"]


async def test_git_failing_past_the_threshold_is_told(tmp_path: Path) -> None:
    """Fetches failing for longer than ``unreachable_after`` are one event; success recovers."""
    h = host(tmp_path, {"apps/web.yaml": manifest("web", "busybox:1.36")})
    ctl, notifier = h.controller()
    trouble: list[tuple[float, str] | None] = [None]
    notifier.git_trouble = lambda: trouble[0]
    await pass_and_flush(ctl, notifier)
    trouble[0] = (60.0, "cannot fetch https://git.example/x: connection refused")
    await pass_and_flush(ctl, notifier)
    trouble[0] = (400.0, "cannot fetch https://git.example/x: connection refused")
    await pass_and_flush(ctl, notifier)
    await pass_and_flush(ctl, notifier)
    trouble[0] = None
    await pass_and_flush(ctl, notifier)
    assert [n.lines() for n in h.inbox.got[1:]] == [
        ["git: unreachable: cannot fetch https://git.example/x: connection refused"],
        ["git: recovered"],
    ]


async def test_a_refused_deletion_is_told_once(tmp_path: Path) -> None:
    """Removing every manifest is refused, and that is said once."""
    h = host(tmp_path, {"apps/web.yaml": manifest("web", "busybox:1.36"), "README": "x"})
    ctl, notifier = h.controller()
    await pass_and_flush(ctl, notifier)
    (h.repo / "apps" / "web.yaml").unlink()
    commit_files(h.repo, {}, "Remove web")
    await pass_and_flush(ctl, notifier)
    await pass_and_flush(ctl, notifier)
    assert [[e.kind for e in n.events] for n in h.inbox.got] == [["deployed"], ["deletion_refused"]]


def test_a_destination_gets_only_its_events_and_severities() -> None:
    """``events`` and ``min_severity`` filter a notice; nothing left means no message."""
    from controller.notify.events import Event

    notice = Notice("t", None, "", (Event("a", "deployed", "created"), Event("b", "failed", "x")))
    only = notice.only(frozenset({"deployed", "failed"}), "error")
    assert only is not None and [e.app for e in only.events] == ["b"]
    assert notice.only(frozenset({"recovered"}), "info") is None


async def test_a_degraded_app_is_told_and_a_heal_is_drift_corrected(tmp_path: Path) -> None:
    """An app that stays down (restartPolicy never) is degraded once; a healed one is told."""
    never = manifest("web", "busybox:1.36").replace("spec: {", "spec: {restartPolicy: never, ")
    h = host(tmp_path, {"apps/web.yaml": never, "apps/api.yaml": manifest("api", "busybox:1.36")})
    ctl, notifier = h.controller()
    await pass_and_flush(ctl, notifier)
    (web,) = [c for c in h.runtime.containers() if c.app == "web"]
    (api,) = [c for c in h.runtime.containers() if c.app == "api"]
    h.runtime.crash(web.id, exit_code=3)
    h.runtime.crash(api.id, exit_code=1)
    await pass_and_flush(ctl, notifier)
    await pass_and_flush(ctl, notifier)
    kinds = [[(e.app, e.kind) for e in n.events] for n in h.inbox.got[1:]]
    assert kinds == [[("api", "healed"), ("web", "degraded")]]
    assert "drift corrected" in h.inbox.got[1].lines()[0]


async def test_a_channel_spaces_its_sends_by_the_rate_limit() -> None:
    """At 2 a minute the second send waits about 30 s (on the channel's own clock)."""
    from controller.notify.sender import Channel

    waits: list[float] = []
    sent: list[str] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    channel = Channel("ops", max_per_minute=2, report=lambda n, r: sent.append(r.outcome),
                      sleep=sleep)  # fmt: skip

    async def job() -> Result:
        return Result("ok")

    channel.offer(job)
    channel.offer(job)
    worker = asyncio.create_task(channel.run())
    await asyncio.wait_for(channel.drain(), 5)
    worker.cancel()
    assert sent == ["ok", "ok"]
    assert len(waits) == 1 and 29.0 < waits[0] <= 30.0


@dataclass
class Busy(Inbox):
    """A destination that is busy at first: ``retry`` (with a Retry-After) ``busy`` times,
    then it takes the notice; with ``hang`` it never answers."""

    busy: int = 1
    hang: bool = False

    async def send(self, notice: Notice) -> Result:
        if self.hang:
            await asyncio.Event().wait()
        if self.busy > 0:
            self.busy -= 1
            return Result("retry", "HTTP 503", retry_after=0.2)
        return await super().send(notice)


def flushing_host(tmp_path: Path, inbox: Inbox) -> tuple[Controller, Notifier, History]:
    h = host(tmp_path, {"apps/web.yaml": manifest("web", "busybox:1.36")})
    h.inbox = inbox
    ctl, notifier = h.controller()
    assert isinstance(ctl.history, History)
    return ctl, notifier, ctl.history


async def test_a_shutdown_delivers_the_queued_notice_within_its_budget(tmp_path: Path) -> None:
    """The deploy's notice is still queued (its destination asked to retry) when the controller
    stops: the flush waits for the retry instead of dropping it."""
    inbox = Busy()
    ctl, notifier, history = flushing_host(tmp_path, inbox)
    await ctl.run_pass(full=True, apps=set(), trigger="resync")
    workers = [asyncio.create_task(c.run()) for c in notifier.channels.values()]
    try:
        await notifier.flush(5.0)
    finally:
        for worker in workers:
            worker.cancel()
    assert [e.kind for n in inbox.got for e in n.events] == ["deployed"]
    assert [r["result"] for r in history.notifications()] == ["ok"]


async def test_a_shutdown_records_what_its_budget_could_not_deliver(tmp_path: Path) -> None:
    """A destination that never answers holds the shutdown for the budget only; its notice is
    recorded as dropped (history and metric), not lost without a word."""
    inbox = Busy(hang=True)
    ctl, notifier, history = flushing_host(tmp_path, inbox)
    reported: list[tuple[str, str]] = []
    notifier._report = lambda name, result: reported.append((name, result.outcome))
    await ctl.run_pass(full=True, apps=set(), trigger="resync")
    workers = [asyncio.create_task(c.run()) for c in notifier.channels.values()]
    started = asyncio.get_running_loop().time()
    try:
        await notifier.flush(0.3)
    finally:
        for worker in workers:
            worker.cancel()
    assert asyncio.get_running_loop().time() - started < 2.0
    assert inbox.got == []
    assert reported == [("inbox", "dropped")]
    (row,) = history.notifications()
    assert (row["result"], row["detail"]) == ("dropped", "controller stopped")


async def test_manual_sync_tells_once_per_revision_that_it_waits_for_approval(
    tmp_path: Path,
) -> None:
    """Manual sync: the tip's plan waits for approval, and the destinations hear it once per
    revision (not on every pass), with what applying it would change; the approved apply is
    then a deploy like any other."""
    from controller.daemon.manual import SyncGate
    from controller.daemon.overrides import Overrides
    from controller.daemon.run import awaiting_approval
    from tests.gitutil import git

    h = host(tmp_path, {"apps/web.yaml": manifest("web", "busybox:1.36")})
    ctl, notifier = h.controller()
    ctl.gate = SyncGate("manual", Overrides.load(h.state))
    notifier.awaiting = lambda: awaiting_approval(ctl.gate)
    first = git(h.repo, "rev-parse", "HEAD")
    await pass_and_flush(ctl, notifier)
    await pass_and_flush(ctl, notifier)
    assert [n.lines() for n in h.inbox.got] == [
        [f'controller: awaiting approval: {first[:12]} "initial": +1 ~0 -0 (web)']
    ]
    assert await h.runtime.list() == []  # nothing applied before the approval
    assert ctl.gate.approve(first, first) == "accepted"
    await pass_and_flush(ctl, notifier)
    assert [(e.app, e.kind) for e in h.inbox.got[1].events] == [("web", "deployed")]
    commit_files(h.repo, {"apps/web.yaml": manifest("web", "busybox:1.37")}, "Bump web")
    second = git(h.repo, "rev-parse", "HEAD")
    await pass_and_flush(ctl, notifier)
    await pass_and_flush(ctl, notifier)
    assert [n.lines() for n in h.inbox.got[2:]] == [
        [f'controller: awaiting approval: {second[:12]} "Bump web": +0 ~1 -0 (web)']
    ]
    assert h.inbox.got[2].events[0].severity == "info"
