"""``GET /healthz`` and ``GET /readyz``: is the process alive, and is the controller ready.

``/healthz`` answers as long as the process and its event loop run. ``/readyz`` is 200 when
the first pass is done, the engine answers a ping, the git fetch is healthy (or failing only
transiently, within its retry budget), and every supervised helper task runs; else 503 with
each check's message. The engine's answer is cached for ``ENGINE_CHECK_TTL_S`` and shared by
concurrent probes, so probes never load the engine. Both stay open with a read token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aiohttp import web

from controller.daemon.loop import Controller
from controller.errors import PermanentError, TrueupError

log = structlog.get_logger(__name__)

PING_TIMEOUT_S = 3.0
ENGINE_CHECK_TTL_S = 1.0
"""How long /readyz reuses the engine's last ping answer."""


def git_check(error: TrueupError | None, failing_s: float, budget_s: float) -> dict[str, Any]:
    """The ``git`` check: ok while the last fetch succeeded, or failed transiently for less
    than ``budget_s``; a permanent error is not ok at once (waiting would not fix it)."""
    if error is None:
        return {"ok": True, "message": "last fetch succeeded"}
    if isinstance(error, PermanentError):
        return {
            "ok": False,
            "message": (
                f"git-watch: fetch failing for {failing_s:.0f}s (permanent error, retried "
                f"every interval): {error}"
            ),
        }
    ok = failing_s < budget_s
    return {
        "ok": ok,
        "message": (
            f"git-watch: fetch failing for {failing_s:.0f}s "
            f"({'within' if ok else 'past'} its {budget_s:.0f}s retry budget): {error}"
        ),
    }


class Probes:
    """The two probe handlers of one controller, and the cached engine ping."""

    def __init__(
        self,
        controller: Controller,
        *,
        fetch_budget_s: float,
        engine_check_ttl_s: float = ENGINE_CHECK_TTL_S,
    ) -> None:
        self.controller = controller
        self.fetch_budget_s = fetch_budget_s
        self.engine_check_ttl_s = engine_check_ttl_s
        self.started = time.monotonic()
        self._engine_answer: tuple[float, bool] | None = None  # (monotonic time, answered)
        self._engine_ping: asyncio.Task[bool] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/readyz", self.readyz)]

    async def healthz(self, request: web.Request) -> web.Response:
        """This handler running is the proof: the process and its event loop are alive."""
        return web.json_response(
            {
                "status": "ok",
                "passes": self.controller.passes,
                "uptime_s": round(time.monotonic() - self.started, 1),
            }
        )

    async def readyz(self, request: web.Request) -> web.Response:
        c = self.controller
        done = c.first_pass_done.is_set()
        first_pass = {
            "ok": done,
            "message": "finished" if done else f"not finished yet ({c.last_error or 'running'})",
        }
        engine = await self._engine_answers()
        checks: dict[str, dict[str, Any]] = {
            "first_pass": first_pass,
            "engine": {
                "ok": engine,
                "message": "answers ping" if engine else "does not answer ping",
            },
            "git": self._git_check(),
            "helpers": self._helpers_check(),
        }
        ready = all(check["ok"] for check in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def close(self) -> None:
        """Cancel a ping still in flight."""
        if self._engine_ping is not None:
            self._engine_ping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._engine_ping

    async def _engine_answers(self) -> bool:
        """The engine's ping answer, at most ``engine_check_ttl_s`` old; one ping at a time."""
        answer = self._engine_answer
        if answer is not None and time.monotonic() - answer[0] < self.engine_check_ttl_s:
            return answer[1]
        if self._engine_ping is None or self._engine_ping.done():
            self._engine_ping = asyncio.create_task(self._ping(), name="readyz-ping")
        # shielded: a probe that hangs up must not cancel the ping other probes wait for
        return await asyncio.shield(self._engine_ping)

    async def _ping(self) -> bool:
        try:
            ok = await asyncio.wait_for(self.controller.runtime.ping(), PING_TIMEOUT_S)
        except TimeoutError:
            ok = False
        except Exception as exc:  # pings never raise by contract; if one does, it is not ready
            log.warning("readyz_ping_failed", error=str(exc) or type(exc).__name__)
            ok = False
        self._engine_answer = (time.monotonic(), ok)
        return ok

    def _git_check(self) -> dict[str, Any]:
        watcher = self.controller.watcher
        if watcher is None:
            return git_check(None, 0.0, self.fetch_budget_s)
        now = time.monotonic()
        failing = now - (watcher.failing_since or now)
        return git_check(watcher.error, failing, self.fetch_budget_s)

    def _helpers_check(self) -> dict[str, Any]:
        helpers = self.controller.helpers
        now = helpers.clock.now()
        down = helpers.down()
        return {
            "ok": not down,
            "message": (
                "; ".join(f"{h.name} is down: {h.error}" for h in down) if down else "all running"
            ),
            "tasks": {name: h.to_json(now) for name, h in sorted(helpers.helpers.items())},
        }
