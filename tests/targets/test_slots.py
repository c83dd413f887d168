"""`Slots`: bounded like a semaphore, but a change coming back from a wait goes first."""

from __future__ import annotations

import asyncio

from controller.targets.slots import Slots


async def test_bound_and_resume_priority() -> None:
    slots = Slots(1)
    order: list[str] = []
    await slots.take()  # "a" holds the only slot

    async def starter(name: str) -> None:
        await slots.take()
        order.append(name)
        slots.give()

    async def resumer() -> None:
        await slots.take(resume=True)
        order.append("resumed")
        slots.give()

    starters = [asyncio.create_task(starter(f"new{i}")) for i in range(3)]
    await asyncio.sleep(0)  # the starters queue first
    back = asyncio.create_task(resumer())
    await asyncio.sleep(0)
    assert order == []  # nobody runs while the slot is held
    slots.give()
    await asyncio.gather(*starters, back)
    assert order == ["resumed", "new0", "new1", "new2"]


async def test_cancelled_waiter_does_not_leak_the_slot() -> None:
    slots = Slots(1)
    await slots.take()
    waiting = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    slots.give()
    await asyncio.wait_for(slots.take(), timeout=1)  # the slot came back
