"""`Slots`: at most ``n`` changes doing engine work at once, waits excluded.

A change holds a slot while it builds, creates, starts or stops containers, and gives it up
while it only waits (a container settling or becoming healthy). Coming back from a wait it
goes before changes that have not started yet, so an app that became ready finishes at once,
and the apps that depend on it start then, instead of after every queued app has had a turn.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """A semaphore whose waiters coming back from a wait (``resume=True``) go first."""

    def __init__(self, n: int) -> None:
        self._free = max(1, n)
        self._resuming: deque[asyncio.Future[None]] = deque()
        self._starting: deque[asyncio.Future[None]] = deque()

    async def take(self, *, resume: bool = False) -> None:
        """Wait for a slot: behind other resuming changes only when ``resume``."""
        ahead = self._resuming if resume else (self._resuming or self._starting)
        if self._free > 0 and not ahead:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._resuming if resume else self._starting
        queue.append(waiter)
        try:
            await waiter  # `give` hands the slot over by resolving it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed over just as we were cancelled: pass it on
            else:
                queue.remove(waiter)
            raise

    def give(self) -> None:
        """Return a slot: to the first resuming waiter, else the first starting one."""
        for queue in (self._resuming, self._starting):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1
