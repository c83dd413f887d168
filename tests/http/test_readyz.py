"""/readyz of an in-process controller on FakeRuntime: the engine check is cached, and a
helper task that crashed makes it 503 naming the task until the task runs again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from controller.http.probes import ENGINE_CHECK_TTL_S
from controller.runtime.base import RuntimeEvent
from tests.http.conftest import Served, serve


async def readyz(s: Served) -> tuple[int, dict[str, Any]]:
    async with s.http.get(f"{s.url}/readyz") as r:
        return r.status, await r.json()


async def test_readyz_pings_the_engine_at_most_once_per_ttl(served: Served) -> None:
    """A burst of probes, concurrent and one after another, costs one ping; a probe after
    the cache expired pings again."""
    before = served.runtime.calls["ping"]
    answers = await asyncio.gather(*(readyz(served) for _ in range(10)))
    answers += [await readyz(served) for _ in range(5)]
    assert [status for status, _ in answers] == [200] * 15
    assert served.runtime.calls["ping"] == before + 1
    await asyncio.sleep(ENGINE_CHECK_TTL_S)
    status, body = await readyz(served)
    assert status == 200 and body["checks"]["engine"]["ok"] is True
    assert served.runtime.calls["ping"] == before + 2


async def test_a_crashed_helper_makes_readyz_503_naming_it_until_it_runs_again(
    tmp_path: Path,
) -> None:
    """The engine event pump raises something unexpected: the failure is logged with the
    task's name, /readyz is 503 naming it and its error, the controller goes on, and once the
    pump is restarted /readyz is 200 again and events heal replicas as before."""
    s = await serve(tmp_path)
    follow = s.runtime.events
    subscriptions = 0

    def events() -> AsyncIterator[RuntimeEvent]:
        nonlocal subscriptions
        subscriptions += 1
        if subscriptions == 1:
            raise RuntimeError("event decoder bug")
        return follow()

    s.runtime.events = events  # type: ignore[method-assign]
    helpers = s.controller.helpers
    helpers.initial, helpers.random = 2.0, lambda: 1.0  # the restart comes 2 s later
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(s.controller.run(stop))
        try:
            async with asyncio.timeout(10):
                await s.controller.first_pass_done.wait()
            status, body = await readyz(s)
            assert status == 503, body
            checks = body["checks"]
            assert [name for name, check in checks.items() if not check["ok"]] == ["helpers"]
            assert checks["helpers"]["message"] == "events is down: RuntimeError: event decoder bug"
            assert checks["helpers"]["tasks"]["events"]["running"] is False
            assert checks["helpers"]["tasks"]["git-watch"]["running"] is True

            async with asyncio.timeout(10):
                while (await readyz(s))[0] != 200:
                    await asyncio.sleep(0.1)
            status, body = await readyz(s)
            assert body["checks"]["helpers"]["tasks"]["events"]["restarts"] == 1
            assert subscriptions == 2

            [container] = s.runtime.containers()
            passes = s.controller.passes
            s.runtime.crash(container.id, exit_code=137)  # heard through the restarted pump
            await s.passes_after(passes)
            assert [c.running for c in s.runtime.containers()] == [True]
            assert not task.done()
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await task
            await s.http.close()
            await s.server.close()
            s.controller.reconciler.source.close()
            assert s.controller.history is not None
            s.controller.history.close()
    [failed] = [e for e in logs if e["event"] == "helper_task_failed"]
    assert (failed["task"], failed["error"]) == ("events", "RuntimeError: event decoder bug")
