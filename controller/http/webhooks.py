"""Webhooks from git hosts: verify the sender, then ask for a fetch. The payload is never trusted.

A webhook only says "look now": the revision deployed is always what the controller fetches
itself, so a forged or replayed payload cannot name a commit. GitHub signs the raw body with
HMAC-SHA256 (``X-Hub-Signature-256: sha256=<hex>``), GitLab sends the shared secret itself
(``X-Gitlab-Token``), and the generic endpoint takes GitHub's scheme under its own header
(``X-Trueup-Signature-256``). Every comparison is constant-time (``hmac.compare_digest``).

A request is judged on its headers before a byte of its body is read: GitLab's token is
compared then, and a GitHub or generic request without a signature header of the right form
(``sha256=`` and 64 hex digits) gets 401 at once. Only then is the body read, in chunks, up to
``max_body`` (``webhook_max_body``, default :data:`MAX_BODY`) and within
:data:`BODY_TIMEOUT_S`; a larger one (by ``Content-Length``, at once, or as it streams in) gets
413 and is never held in memory. At most ``max_concurrent`` (:data:`MAX_CONCURRENT`) requests
are past the header check at a time (a semaphore); one more gets 503 with ``Retry-After`` at
once, unread. A payload that is not JSON, or nested too deep to parse, is 400.

A burst of webhooks (each less than :data:`QUIET_S` after the one before) costs at most two
fetches: :class:`FetchCoalescer` fetches at the first one, and once at the end of the burst
for all the others; one fetch at a time. A fetch that raises is logged, never silently lost.

Used by ``server.py``, which mounts :class:`Webhooks` at ``/hooks/{github,gitlab,generic}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

import structlog
from aiohttp import web

from controller.daemon.supervisor import describe

log = structlog.get_logger(__name__)

MAX_BODY = 256 * 1024
"""Default largest webhook body (``webhook_max_body``): a push event of a few commits is a few
KiB; GitHub caps its payloads at 25 MB, and a push of hundreds of commits may need more."""
MAX_CONCURRENT = 64
"""Webhook requests handled (past the header check) at once; more get 503 unread. With
:data:`MAX_BODY` that bounds what bodies in flight can hold to 16 MiB."""
QUIET_S = 0.5
"""Requests closer together than this are one burst (see :class:`FetchCoalescer`)."""
BODY_TIMEOUT_S = 10.0
"""How long a body may take to arrive once its headers passed (a slow sender holds a slot)."""
_CHUNK = 64 * 1024
_SIGNATURE_FORM = re.compile(r"sha256=[0-9a-f]{64}")

GENERIC_HEADER = "X-Trueup-Signature-256"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value GitHub (and the generic endpoint) expects for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is ``sha256=<hex>`` of ``body`` under ``secret`` (constant time)."""
    if not header:
        return False
    given = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(sign(secret, body).encode(), given)


def signature_well_formed(header: str | None) -> bool:
    """True when ``header`` looks like a signature (``sha256=`` + 64 lower-case hex digits);
    checked before the body is read, so a request without one costs nothing."""
    return header is not None and _SIGNATURE_FORM.fullmatch(header.strip()) is not None


def token_valid(secret: bytes, header: str | None) -> bool:
    """True when ``header`` equals the shared secret (GitLab's scheme; constant time)."""
    if header is None:
        return False
    return hmac.compare_digest(secret, header.encode("utf-8", "replace"))


class TooLarge(Exception):
    """The body is over the limit."""


async def read_limited(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The request body, read in chunks; :class:`TooLarge` as soon as it passes ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Checker(Protocol):
    """What the coalescer needs of the git watcher (``RevisionWatcher`` has it)."""

    async def check(self) -> object: ...


class FetchCoalescer:
    """One fetch at a time; a burst of requests costs at most two fetches.

    A burst is a run of requests each less than ``quiet_s`` after the one before. Its first
    request fetches at once (after the fetch in flight, if any); every later one folds into a
    single follow-up fetch, made once no request came for ``quiet_s``, so it sees whatever the
    burst announced. The watcher's own poll keeps its schedule meanwhile.

    ``request(mark=...)`` also asks for a pass (``mark(trigger)``) once that fetch is done, so
    a manual reconcile sees the newest commit; without a watcher it only marks. A fetch that
    raises (the watcher logs and keeps the errors it expects; this is anything else) is logged
    as ``requested_fetch_failed`` and its passes are still marked: the watcher keeps the last
    good revision, and the next request fetches again.
    """

    def __init__(
        self,
        watcher: Checker | None,
        mark: Callable[[str], None],
        *,
        quiet_s: float = QUIET_S,
    ) -> None:
        self.watcher = watcher
        self.mark = mark
        self.quiet_s = quiet_s
        self.fetches = 0
        self._wanted = asyncio.Event()
        self._marks: list[str] = []
        self._last_request: float | None = None
        self._leading = False
        self._task: asyncio.Task[None] | None = None

    def request(self, mark: str | None = None) -> None:
        now = time.monotonic()
        if self._last_request is None or now - self._last_request >= self.quiet_s:
            self._leading = True  # the first of a burst: no reason to wait
        self._last_request = now
        if mark is not None and mark not in self._marks:
            self._marks.append(mark)
        self._wanted.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="requested-fetch")

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            if not self._leading:
                await self._until_quiet()
            self._leading = False
            self._wanted.clear()
            marks, self._marks = self._marks, []
            await self._fetch()
            for trigger in marks:
                self.mark(trigger)

    async def _until_quiet(self) -> None:
        """Sleep until no request came for ``quiet_s``."""
        while self._last_request is not None:
            left = self._last_request + self.quiet_s - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)

    async def _fetch(self) -> None:
        if self.watcher is None:
            return
        try:
            await self.watcher.check()  # the failures it expects are logged and kept by it
        except Exception as exc:  # anything else: log it; the coalescer keeps serving
            log.error("requested_fetch_failed", error=describe(exc), exc_info=exc)
            return
        self.fetches += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _reply(
    status: int, result: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"result": result, "message": message}, status=status, headers=headers)


Handler = Callable[[web.Request, bytes], Awaitable[web.Response]]


class Webhooks:
    """The three webhook endpoints; ``count(provider, result)`` feeds the metrics."""

    def __init__(
        self,
        secret: bytes | None,
        fetcher: FetchCoalescer,
        *,
        branch: Callable[[], str | None],
        count: Callable[[str, str], None],
        max_body: int = MAX_BODY,
        max_concurrent: int = MAX_CONCURRENT,
    ) -> None:
        self.secret = secret
        self.fetcher = fetcher
        self.branch = branch
        self.count = count
        self.max_body = max_body
        self._slots = asyncio.Semaphore(max_concurrent)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/hooks/github", self.github),
            web.post("/hooks/gitlab", self.gitlab),
            web.post("/hooks/generic", self.generic),
        ]

    async def _handle(
        self, request: web.Request, provider: str, refuse: str | None, handler: Handler
    ) -> web.Response:
        """Judge the headers (``refuse``: why they fail), take a slot, read the body, handle.

        Every refusal here answers without reading the body.
        """
        if self.secret is None:
            self.count(provider, "disabled")
            return _reply(
                403,
                "disabled",
                "webhooks are disabled: start `trueup run` with --webhook-secret-file",
            )
        if refuse is not None:
            return self._unauthorized(provider, refuse)
        if self._slots.locked():
            self.count(provider, "busy")
            log.warning("webhook_busy", provider=provider)
            return _reply(
                503, "busy", "too many webhooks at once; retry", headers={"Retry-After": "1"}
            )
        async with self._slots:
            try:
                async with asyncio.timeout(BODY_TIMEOUT_S):
                    body = await read_limited(request, self.max_body)
            except TooLarge:
                self.count(provider, "too_large")
                return _reply(413, "too_large", f"body over {self.max_body} bytes")
            except TimeoutError:
                self.count(provider, "timeout")
                return _reply(408, "timeout", f"body not received within {BODY_TIMEOUT_S:.0f}s")
            return await handler(request, body)

    def _unauthorized(self, provider: str, what: str) -> web.Response:
        self.count(provider, "unauthorized")
        log.warning("webhook_refused", provider=provider, reason=what)
        return _reply(401, "unauthorized", what)

    def _accept(self, provider: str, event: str) -> web.Response:
        self.count(provider, "accepted")
        log.info("webhook_accepted", provider=provider, hook_event=event)
        self.fetcher.request()
        return _reply(202, "accepted", "fetch requested")

    def _ignore(self, provider: str, why: str) -> web.Response:
        self.count(provider, "ignored")
        log.info("webhook_ignored", provider=provider, reason=why)
        return _reply(200, "ignored", why)

    def _wrong_branch(self, payload: dict[str, Any]) -> str | None:
        """Why a push is not for the branch followed, or None when it is (or may be)."""
        ref = payload.get("ref")
        branch = self.branch()
        if branch is None or not isinstance(ref, str):
            return None  # branch unknown yet: a fetch is cheap, and tells
        if ref != f"refs/heads/{branch}":
            return f"push to {ref}, following refs/heads/{branch}"
        return None

    async def github(self, request: web.Request) -> web.Response:
        refuse = None
        if not signature_well_formed(request.headers.get("X-Hub-Signature-256")):
            refuse = "missing or wrong X-Hub-Signature-256"
        return await self._handle(request, "github", refuse, self._github)

    async def _github(self, request: web.Request, body: bytes) -> web.Response:
        assert self.secret is not None
        if not signature_valid(self.secret, body, request.headers.get("X-Hub-Signature-256")):
            return self._unauthorized("github", "missing or wrong X-Hub-Signature-256")
        event = request.headers.get("X-GitHub-Event", "")
        if event == "ping":
            self.count("github", "ping")
            return _reply(200, "ping", "pong")
        if event != "push":
            return self._ignore("github", f"event {event or '(none)'} is not a push")
        payload = _github_payload(body, request.content_type)
        if payload is None:
            self.count("github", "bad_request")
            return _reply(400, "bad_request", "push payload is not JSON")
        if (why := self._wrong_branch(payload)) is not None:
            return self._ignore("github", why)
        return self._accept("github", event)

    async def gitlab(self, request: web.Request) -> web.Response:
        refuse = None
        if self.secret is not None and not token_valid(
            self.secret, request.headers.get("X-Gitlab-Token")
        ):
            refuse = "missing or wrong X-Gitlab-Token"
        return await self._handle(request, "gitlab", refuse, self._gitlab)

    async def _gitlab(self, request: web.Request, body: bytes) -> web.Response:
        event = request.headers.get("X-Gitlab-Event", "")
        if event != "Push Hook":
            return self._ignore("gitlab", f"event {event or '(none)'} is not a push")
        payload = _json(body)
        if not isinstance(payload, dict):
            self.count("gitlab", "bad_request")
            return _reply(400, "bad_request", "push payload is not a JSON object")
        if (why := self._wrong_branch(payload)) is not None:
            return self._ignore("gitlab", why)
        return self._accept("gitlab", event)

    async def generic(self, request: web.Request) -> web.Response:
        refuse = None
        if not signature_well_formed(request.headers.get(GENERIC_HEADER)):
            refuse = f"missing or wrong {GENERIC_HEADER}"
        return await self._handle(request, "generic", refuse, self._generic)

    async def _generic(self, request: web.Request, body: bytes) -> web.Response:
        assert self.secret is not None
        if not signature_valid(self.secret, body, request.headers.get(GENERIC_HEADER)):
            return self._unauthorized("generic", f"missing or wrong {GENERIC_HEADER}")
        return self._accept("generic", "generic")


def _json(body: bytes) -> Any:
    """``body`` parsed as JSON; None when it is not JSON or nests too deep to parse."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _github_payload(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The push payload, sent as JSON or as a form field ``payload`` (both are allowed)."""
    if content_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"))
        except ValueError:
            return None
        body = fields.get("payload", [""])[0].encode("utf-8")
    payload = _json(body)
    return payload if isinstance(payload, dict) else None
