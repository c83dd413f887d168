"""Delivery off the pass: one bounded queue and one background worker per destination.

``Channel.offer`` never waits: a full queue drops the job (recorded as ``dropped``). The
worker spaces its sends by the destination's rate limit, retries with backoff (honouring 429
and Retry-After, see ``delivery``) and reports each final result to ``report`` (the history
and the ``trueup_notifications_total`` metric). A hanging or failing destination only delays
its own queue, never a pass. On shutdown the controller gives the queues what is left of its
``shutdown_grace`` to empty (``Notifier.flush``) before the workers are cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from controller.notify.delivery import Result, with_retries

log = structlog.get_logger(__name__)

QUEUE_SIZE = 100
Job = Callable[[], Awaitable[Result]]
Report = Callable[[str, Result], None]


class Channel:
    """The queue and worker of one destination."""

    def __init__(
        self,
        name: str,
        *,
        max_per_minute: int,
        report: Report,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.spacing = 60.0 / max_per_minute
        self.report = report
        self.sleep = sleep
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._last = float("-inf")
        self._sending = False

    @property
    def pending(self) -> int:
        """Jobs queued or being sent."""
        return self.queue.qsize() + int(self._sending)

    def offer(self, job: Job) -> None:
        """Queue ``job``; drop it when the queue is full."""
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.report(self.name, Result("dropped", "queue full"))

    async def run(self) -> None:
        """Send queued jobs until cancelled (a supervised helper task)."""
        while True:
            job = await self.queue.get()
            self._sending = True
            try:
                wait = self._last + self.spacing - time.monotonic()
                if wait > 0:
                    await self.sleep(wait)
                self._last = time.monotonic()
                result = await with_retries(job, sleep=self.sleep)
                self.report(self.name, result)
            finally:
                self._sending = False
                self.queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued job was sent (shutdown, tests, `trueup notify test`)."""
        await self.queue.join()
