"""Change detection: one "new revision" signal fed by a filesystem watch and a poll timer.

The controller loop starts :meth:`RevisionWatcher.run` as a task and waits on
:meth:`RevisionWatcher.wait` (or iterates :meth:`RevisionWatcher.revisions`). The signal is
level-triggered and coalescing: several commits between two waits give one wake-up with the
newest revision, which is what a reconcile pass wants.

* A local repository is watched with watchfiles (``HEAD``, ``packed-refs``, ``refs/``), so a
  commit is seen well within a second; a poll at ``interval`` is kept as a safety net.
* A remote is polled: ``fetch()`` every ``interval`` ±``jitter`` (10% by default), so many
  controllers do not hit one git server in step.

A failed fetch logs ``git_fetch_failed`` and is kept in :attr:`RevisionWatcher.error` (since
:attr:`RevisionWatcher.failing_since`); the last good revision stays in force. ``on_fetch``, when
given, hears about every fetch (its duration and error) and feeds the metrics. ``sleep`` and
``random`` are injectable so tests never wait for a real interval.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from controller.errors import TransientError, TrueupError
from controller.source.git import GitSource
from controller.source.model import Revision

if TYPE_CHECKING:  # imported where the watch starts: one-shot commands never load it
    import watchfiles

log = structlog.get_logger(__name__)

_REF_FILES = ("HEAD", "packed-refs")


class RevisionWatcher:
    """Watches one :class:`GitSource` and raises a signal when its branch tip moves."""

    def __init__(
        self,
        source: GitSource,
        *,
        interval: float = 30.0,
        jitter: float = 0.1,
        watch: bool | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        on_fetch: Callable[[float, TrueupError | None], None] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._source = source
        self._interval = interval
        self._jitter = jitter
        self._watch_enabled = (not source.is_remote) if watch is None else watch
        self._sleep = sleep
        self._random = random
        self._lock = asyncio.Lock()
        self.latest: Revision | None = None
        self.error: TrueupError | None = None
        self.failing_since: float | None = None
        """``time.monotonic()`` of the first failure of the current run of failed fetches."""
        self.fetched_at: float | None = None
        """When the last fetch ended, successful or not (wall clock)."""
        self._on_fetch = on_fetch
        self.changed = asyncio.Event()
        self.watching = asyncio.Event()

    def next_delay(self) -> float:
        """Seconds until the next poll: ``interval`` scaled by a random factor in 1 ± jitter."""
        return self._interval * (1.0 + self._jitter * (2.0 * self._random() - 1.0))

    async def check(self) -> Revision | None:
        """Fetch once; set the signal if the tip moved. Returns the revision in force."""
        async with self._lock:
            started = time.monotonic()
            try:
                revision = await asyncio.to_thread(self._source.fetch)
            except TrueupError as exc:
                self._fetched(started, exc)
                self.error = exc
                log.warning(
                    "git_fetch_failed",
                    url=self._source.display,
                    error=str(exc),
                    transient=isinstance(exc, TransientError),
                    revision=self.latest.sha if self.latest else None,
                )
                return self.latest
            self._fetched(started, None)
            if self.error is not None:
                log.info("git_fetch_recovered", url=self._source.display)
                self.error = None
            if revision != self.latest:
                previous, self.latest = self.latest, revision
                log.info(
                    "git_revision_changed",
                    url=self._source.display,
                    revision=revision.sha,
                    branch=revision.branch,
                    previous=previous.sha if previous else None,
                )
                self.changed.set()
            return self.latest

    def _fetched(self, started: float, error: TrueupError | None) -> None:
        self.fetched_at = time.time()
        if error is None:
            self.failing_since = None
        elif self.failing_since is None:
            self.failing_since = started
        if self._on_fetch is not None:
            self._on_fetch(time.monotonic() - started, error)

    async def wait(self) -> Revision:
        """Wait for the signal, clear it and return the newest revision."""
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.latest is not None:
                return self.latest

    async def revisions(self) -> AsyncIterator[Revision]:
        """Yield the newest revision each time the signal fires (the first one included)."""
        while True:
            yield await self.wait()

    async def run(self) -> None:
        """Check now, then watch and poll until cancelled. The first good fetch fires."""
        await self.check()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._poll())
            if self._watch_enabled and self._source.git_dirs:
                group.create_task(self._watch())

    async def _poll(self) -> None:
        while True:
            await self._sleep(self.next_delay())
            await self.check()

    async def _watch(self) -> None:
        dirs = self._source.git_dirs
        stop = asyncio.Event()
        try:
            import watchfiles

            changes = watchfiles.awatch(
                *dirs, watch_filter=_ref_filter(dirs), step=50, debounce=400, stop_event=stop
            )
            pending = asyncio.ensure_future(anext(changes))
            await asyncio.sleep(0)  # let awatch register its watches before the next check
            self.watching.set()
            log.debug("git_watch_started", dirs=[str(d) for d in dirs])
            await self.check()  # a commit that landed before the watch was registered
            while True:
                await pending
                await self.check()
                pending = asyncio.ensure_future(anext(changes))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # watching is an optimisation: polling still runs
            log.warning("git_watch_failed", error=str(exc) or type(exc).__name__)
        finally:
            stop.set()


def _ref_filter(dirs: tuple[Path, ...]) -> Callable[[watchfiles.Change, str], bool]:
    """A watchfiles filter passing only changes to HEAD, packed-refs and refs/ in a git dir."""
    roots = [str(d.resolve()) + "/" for d in dirs] + [str(d) + "/" for d in dirs]

    def keep(_change: watchfiles.Change, path: str) -> bool:
        if path.endswith(".lock"):
            return False
        for root in roots:
            if path.startswith(root):
                rel = path[len(root) :]
                return rel in _REF_FILES or rel.startswith("refs/")
        return False

    return keep
