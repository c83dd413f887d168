"""The dashboard's Server-Sent Events streams: ``/api/v1/events`` and an app's live logs.

``GET /api/v1/events`` carries the controller's live feed (``daemon/events.py``): pass
started/finished, app status changes, new revisions. Each event has an ``id``; a browser that
reconnects sends ``Last-Event-ID`` (or, on its first connect, ``?last_event_id=`` with the id
the page was rendered at) and gets what it missed from the hub's ring buffer, or a
``snapshot`` event (the whole overview) when that is no longer kept. A ``: keepalive`` comment
goes out every :data:`KEEPALIVE_S`. A client that falls :data:`~controller.daemon.events.QUEUE`
events behind is dropped (its stream ends, the browser reconnects and resumes); publishing
never waits for a client.

``GET /api/v1/apps/{name}/logs?tail=N&follow=1`` streams the lines of every replica of the
app (``Target.logs``): the last ``tail`` (at most :data:`MAX_TAIL`, default 100), then with
``follow`` what they print, at most :data:`MAX_RATE` lines a second (past it lines are
dropped and a marker says how many), each line cut at :data:`MAX_LINE` characters. The
engine's streams are open only while the client is: a client that goes is noticed within
:data:`POLL_S` and its engine streams are closed. When the replicas are replaced (a pass
changed the app, or every stream ended), it follows the new ones.

Both answer only while the read guard lets the request through (``auth.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from controller.daemon.events import Event, EventHub, Subscriber
from controller.errors import TrueupError
from controller.targets.target import Target

log = structlog.get_logger(__name__)

KEEPALIVE_S = 15.0
POLL_S = 1.0
"""How often an idle stream checks that its client is still there."""
MAX_TAIL = 1000
DEFAULT_TAIL = 100
MAX_RATE = 200
"""Log lines a second one stream sends; the rest are dropped, with a marker."""
MAX_LINE = 4096
HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-store",
    "X-Accel-Buffering": "no",
}

Snapshot = Callable[[], Awaitable[dict[str, Any]]]


def frame(kind: str, data: Any) -> bytes:
    """An SSE frame without an id (JSON data on one line)."""
    body = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {kind}\ndata: {body}\n\n".encode()


def gone(request: web.Request) -> bool:
    """Whether the client closed its connection."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def start_stream(request: web.Request, response: web.StreamResponse) -> None:
    """Send the stream's headers and the browser's reconnect delay."""
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")


async def next_event(sub: Subscriber) -> Event:
    """The subscriber's next event; ``TimeoutError`` after :data:`POLL_S` without one (no
    task is made per wait, unlike ``asyncio.wait_for``: fifty idle clients stay cheap)."""
    async with asyncio.timeout(POLL_S):
        return await sub.queue.get()


def parse_tail(raw: str | None) -> int:
    """``?tail=``: a number from 0 to :data:`MAX_TAIL` (a bad one is the default)."""
    if raw is None or not raw.strip().isdigit():
        return DEFAULT_TAIL
    return min(int(raw), MAX_TAIL)


class RateLimit:
    """At most ``rate`` lines per second after the first ``burst`` (the tail asked for);
    counts what it drops until it can say so."""

    def __init__(
        self, rate: int = MAX_RATE, *, burst: int = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.second = int(clock())
        self.sent = 0
        self.dropped = 0

    def admit(self) -> tuple[bool, int]:
        """(whether this line may go, how many were dropped before it to report now)."""
        if self.burst > 0:
            self.burst -= 1
            return True, 0
        now = int(self.clock())
        report = 0
        if now != self.second:
            self.second, self.sent = now, 0
            report, self.dropped = self.dropped, 0
        if self.sent >= self.rate:
            self.dropped += 1
            return False, report
        self.sent += 1
        return True, report


class Streams:
    """The two SSE handlers of one controller."""

    def __init__(
        self,
        hub: EventHub,
        target: Target,
        *,
        snapshot: Snapshot,
        known_apps: Callable[[], set[str]],
    ) -> None:
        self.hub = hub
        self.target = target
        self.snapshot = snapshot
        self.known_apps = known_apps
        self.closing = False
        """Set by `close`: every stream ends within :data:`POLL_S` (the server would
        otherwise wait for open streams before it stops)."""

    def close(self) -> None:
        self.closing = True

    def gone(self, request: web.Request) -> bool:
        """Whether the stream should end: its client went, or the server is closing."""
        return self.closing or gone(request)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/events", self.events),
            web.get("/api/v1/apps/{name}/logs", self.logs),
        ]

    # -- the live feed -------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        last = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        response = web.StreamResponse(headers=HEADERS)
        sub, missed = self.hub.subscribe(last)
        log.info("events_client_connected", clients=self.hub.subscribers, resumed=bool(last))
        try:
            await start_stream(request, response)
            if missed is None:
                at = self.hub.last_id
                body = json.dumps(await self.snapshot(), separators=(",", ":"), default=str)
                await response.write(f"id: {at}\nevent: snapshot\ndata: {body}\n\n".encode())
                missed = []
            for event in missed:
                await response.write(event.frame)
            await self._forward(request, response, sub)
        except ConnectionError:
            pass  # the client went
        finally:
            self.hub.unsubscribe(sub)
            log.info("events_client_gone", clients=self.hub.subscribers, dropped=sub.dropped)
        return response

    async def _forward(
        self, request: web.Request, response: web.StreamResponse, sub: Subscriber
    ) -> None:
        """Send each event the hub queues for ``sub`` (the backlog was computed when it
        subscribed, so nothing comes twice) until the client goes or is dropped."""
        idle = 0.0
        while not sub.dropped and not self.closing:
            try:
                event = await next_event(sub)
            except TimeoutError:
                if self.gone(request):
                    return
                idle += POLL_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    await response.write(b": keepalive\n\n")
                continue
            if sub.dropped:
                return  # the browser reconnects and resumes from the ring
            idle = 0.0
            await response.write(event.frame)

    # -- logs ----------------------------------------------------------------------------

    async def logs(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.known_apps():
            return web.json_response({"error": f"no app named {name!r}"}, status=404)
        tail = parse_tail(request.query.get("tail"))
        follow = request.query.get("follow", "") in ("1", "true", "yes")
        response = web.StreamResponse(headers=HEADERS)
        await start_stream(request, response)
        log.info("logs_stream_opened", app=name, tail=tail, follow=follow)
        writer = LogWriter(response, RateLimit(burst=tail))
        try:
            await writer.send("reset", {"app": name})
            if not follow:
                await writer.pump(self.target.logs(name, tail=tail))
                await writer.send("end", {"app": name})
            else:
                await self._follow(request, writer, name, tail)
        except ConnectionError:
            pass  # the client went
        finally:
            log.info("logs_stream_closed", app=name, lines=writer.lines)
        return response

    async def _follow(self, request: web.Request, writer: LogWriter, name: str, tail: int) -> None:
        """Follow the app's replicas until the client goes; after a pass that replaced them
        (or when every stream ended) follow the new ones, from their new lines on."""
        sub, _ = self.hub.subscribe()
        try:
            while not self.gone(request):
                if sub.dropped:
                    self.hub.unsubscribe(sub)
                    sub, _ = self.hub.subscribe()
                replicas = await self._replicas(name)
                reader = asyncio.create_task(
                    writer.pump(self.target.logs(name, follow=True, tail=tail))
                )
                tail = 0
                try:
                    await self._until_replaced(request, writer, sub, reader, (name, replicas))
                finally:
                    reader.cancel()
                    await asyncio.wait([reader])  # its engine streams closed
                    if not reader.cancelled():
                        reader.exception()  # retrieved: a gone client's write error
        finally:
            self.hub.unsubscribe(sub)

    async def _until_replaced(
        self,
        request: web.Request,
        writer: LogWriter,
        sub: Subscriber,
        reader: asyncio.Task[None],
        followed: tuple[str, frozenset[str]],
    ) -> None:
        """Return when the client went, the reader ended, or a pass replaced the replicas
        ``followed`` (the app's name and its containers' ids)."""
        name, replicas = followed
        idle = 0.0
        while not self.gone(request):
            if reader.done():
                reader.result()  # a write to a gone client raises here
                await asyncio.sleep(POLL_S)  # every stream ended: the replicas went
                return
            try:
                event = await next_event(sub)
            except TimeoutError:
                idle += POLL_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    await writer.comment("keepalive")
                continue
            if sub.dropped:
                return  # fell behind the hub: follow again, subscribed anew
            if event.kind == "pass_finished" and await self._replicas(name) != replicas:
                return

    async def _replicas(self, name: str) -> frozenset[str]:
        try:
            rows = await self.target.engine.list()
        except TrueupError:
            return frozenset()
        return frozenset(c.id for c in rows if c.app == name)


class LogWriter:
    """Writes log lines as SSE, rate-bounded, one writer at a time."""

    def __init__(self, response: web.StreamResponse, limit: RateLimit | None = None) -> None:
        self.response = response
        self.limit = limit or RateLimit()
        self.lock = asyncio.Lock()
        self.lines = 0

    async def send(self, kind: str, data: Any) -> None:
        async with self.lock:
            await self.response.write(frame(kind, data))

    async def comment(self, text: str) -> None:
        async with self.lock:
            await self.response.write(f": {text}\n\n".encode())

    async def pump(self, lines: AsyncIterator[str]) -> None:
        """Send each line of ``lines`` the rate admits; close ``lines`` (its engine streams)
        however this ends."""
        try:
            async for line in lines:
                ok, dropped = self.limit.admit()
                if dropped:
                    await self.send("dropped", {"lines": dropped, "max_per_s": self.limit.rate})
                if ok:
                    self.lines += 1
                    await self.send("line", {"line": line[:MAX_LINE]})
        except TrueupError as exc:
            await self.send("problem", {"error": str(exc)})
        finally:
            aclose = getattr(lines, "aclose", None)
            if aclose is not None:
                await aclose()
