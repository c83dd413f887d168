"""RevisionWatcher: a commit raises the signal quickly; polling uses an injected clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from controller.source import GitSource, RevisionWatcher
from tests.gitutil import commit_files, git, make_repo


class FakeClock:
    """An injectable sleep: records each delay and returns only when the test ticks."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._gate: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await self._gate.get()

    def tick(self) -> None:
        self._gate.put_nowait(None)


@asynccontextmanager
async def running(watcher: RevisionWatcher) -> AsyncIterator[asyncio.Task[None]]:
    """Run the watcher as a task for the block; cancel it afterwards."""
    task = asyncio.create_task(watcher.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (really, briefly) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_local_commit_raises_the_signal_within_two_seconds(
    repo: Path, state_dir: Path
) -> None:
    """A commit made with the git CLI is seen by the filesystem watch in under 2 s."""
    with GitSource(str(repo), state_dir=state_dir) as source:
        watcher = RevisionWatcher(source, interval=3600)  # the poll cannot be what sees it
        async with running(watcher):
            first = await asyncio.wait_for(watcher.wait(), 5)
            assert first.sha == git(repo, "rev-parse", "HEAD")
            await asyncio.wait_for(watcher.watching.wait(), 5)
            started = time.monotonic()
            sha = await asyncio.to_thread(commit_files, repo, {"apps/new.yaml": "n: 1\n"}, "new")
            second = await asyncio.wait_for(watcher.wait(), 2)
            assert time.monotonic() - started < 2
            assert second.sha == sha and second.branch == "main"


async def test_switching_branch_and_gc_are_seen(repo: Path, state_dir: Path) -> None:
    """Checking out another branch (HEAD) or packing refs (packed-refs) is also noticed."""
    with GitSource(str(repo), state_dir=state_dir) as source:
        watcher = RevisionWatcher(source, interval=3600)
        async with running(watcher):
            await asyncio.wait_for(watcher.wait(), 5)
            await asyncio.wait_for(watcher.watching.wait(), 5)
            await asyncio.to_thread(git, repo, "switch", "-q", "-c", "other")
            sha = await asyncio.to_thread(commit_files, repo, {"apps/o.yaml": "o: 1\n"}, "o")
            rev = await asyncio.wait_for(watcher.wait(), 2)
            if rev.sha != sha:  # the switch and the commit may arrive as two signals
                rev = await asyncio.wait_for(watcher.wait(), 2)
            assert (rev.sha, rev.branch) == (sha, "other")


async def test_remote_is_polled_with_jitter_and_signals_new_commits(
    tmp_path: Path, state_dir: Path
) -> None:
    """A remote is fetched every interval ±10%; a pushed commit fires the signal once."""
    work = tmp_path / "work"
    make_repo(work, {"apps/web.yaml": "v: 1\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    randoms = iter([0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5])
    clock = FakeClock()
    with GitSource(f"file://{bare}", state_dir=state_dir) as source:
        watcher = RevisionWatcher(
            source, interval=30, sleep=clock.sleep, random=lambda: next(randoms)
        )
        async with running(watcher):
            first = await asyncio.wait_for(watcher.wait(), 5)
            await until(lambda: len(clock.delays) == 1)
            clock.tick()  # a poll with nothing new: no signal
            await until(lambda: len(clock.delays) == 2)
            assert not watcher.changed.is_set()
            sha = commit_files(work, {"apps/web.yaml": "v: 2\n"}, "v2")
            git(work, "push", "-q", str(bare), "HEAD")
            clock.tick()
            second = await asyncio.wait_for(watcher.wait(), 5)
    assert first.sha != second.sha == sha
    assert clock.delays[:3] == pytest.approx([27.0, 33.0, 30.0])


async def test_failed_fetch_keeps_the_last_good_revision(tmp_path: Path, state_dir: Path) -> None:
    """A fetch failure logs git_fetch_failed, keeps the revision in force and raises no signal."""
    work = tmp_path / "work"
    make_repo(work, {"apps/web.yaml": "v: 1\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    clock = FakeClock()
    with GitSource(f"file://{bare}", state_dir=state_dir) as source:
        watcher = RevisionWatcher(source, interval=30, sleep=clock.sleep)
        with capture_logs() as logs:
            async with running(watcher):
                good = await asyncio.wait_for(watcher.wait(), 5)
                bare.rename(tmp_path / "moved.git")
                clock.tick()
                await until(lambda: watcher.error is not None)
                assert watcher.latest == good
                assert not watcher.changed.is_set()
                (tmp_path / "moved.git").rename(bare)
                clock.tick()
                await until(lambda: watcher.error is None)
                assert not watcher.changed.is_set()
    failed = [e for e in logs if e["event"] == "git_fetch_failed"]
    assert len(failed) == 1
    assert failed[0]["transient"] is True
    assert failed[0]["revision"] == good.sha
    assert str(bare) in failed[0]["error"]
    assert any(e["event"] == "git_fetch_recovered" for e in logs)


@given(st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.1, max_value=3600))
def test_poll_delay_stays_within_ten_percent(rand: float, interval: float) -> None:
    """Every poll delay is within ±10% of the interval."""
    remote = cast(GitSource, SimpleNamespace(is_remote=True))  # only is_remote is read here
    watcher = RevisionWatcher(remote, interval=interval, random=lambda: rand)
    assert interval * 0.9 - 1e-9 <= watcher.next_delay() <= interval * 1.1 + 1e-9
