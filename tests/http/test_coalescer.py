"""The webhooks' fetch coalescer: one fetch at a time, a burst costs two, and a fetch that
raises is logged without losing the pass it was asked for."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from controller.http.webhooks import FetchCoalescer


class Watcher:
    """Counts fetches; raises ``failures`` times first, or takes ``duration`` seconds."""

    def __init__(self, *, failures: int = 0, duration: float = 0.0) -> None:
        self.failures = failures
        self.duration = duration
        self.fetches = 0
        self.running = 0
        self.most_at_once = 0

    async def check(self) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.duration)
            if self.failures:
                self.failures -= 1
                raise RuntimeError("mirror corrupt")
            self.fetches += 1
        finally:
            self.running -= 1


async def settle(coalescer: FetchCoalescer, seconds: float = 0.2) -> None:
    await asyncio.sleep(coalescer.quiet_s + seconds)


async def test_a_fetch_that_raises_is_logged_and_its_pass_still_runs() -> None:
    """An unexpected error from the fetch is logged as requested_fetch_failed; the reconcile
    asked for still gets its pass, and the next webhook fetches again."""
    watcher = Watcher(failures=1)
    marks: list[str] = []
    coalescer = FetchCoalescer(watcher, marks.append, quiet_s=0.05)
    try:
        with capture_logs() as logs:
            coalescer.request(mark="api")
            await settle(coalescer)
        failed = [e for e in logs if e["event"] == "requested_fetch_failed"]
        assert len(failed) == 1 and "mirror corrupt" in failed[0]["error"]
        assert marks == ["api"]
        coalescer.request()
        await settle(coalescer)
        assert watcher.fetches == 1
    finally:
        await coalescer.close()


async def test_one_request_fetches_at_once() -> None:
    """A lone webhook does not wait for the quiet period: its fetch starts right away."""
    watcher = Watcher()
    coalescer = FetchCoalescer(watcher, lambda _: None, quiet_s=5.0)
    try:
        coalescer.request()
        await asyncio.sleep(0.1)
        assert watcher.fetches == 1
    finally:
        await coalescer.close()


async def test_a_sustained_burst_costs_two_fetches_one_at_a_time() -> None:
    """Requests 5 ms apart for half a second (fetches of 2 ms) give the first fetch at once
    and one more after the burst, never two at the same time."""
    watcher = Watcher(duration=0.002)
    marks: list[str] = []
    coalescer = FetchCoalescer(watcher, marks.append, quiet_s=0.05)
    try:
        for _ in range(100):
            coalescer.request(mark="api")
            await asyncio.sleep(0.005)
        await settle(coalescer)
        assert watcher.fetches == 2
        assert watcher.most_at_once == 1
        assert marks == ["api", "api"]
        coalescer.request()  # quiet since: a new burst, fetched at once
        await asyncio.sleep(0.02)
        assert watcher.fetches == 3
    finally:
        await coalescer.close()
