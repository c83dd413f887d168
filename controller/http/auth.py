"""Who may call what on the main listener: bearer tokens, compared in constant time.

The API's actions (``POST /api/v1/reconcile``, ``.../suspend``, ``.../resume``,
``/api/v1/apply``) need the API token (``--api-token-file``; ``api.py`` and ``ops.py`` check
it, before any body is read).
With a read token (``--api-read-token-file``), every GET of ``/metrics`` and under
``/api/v1/`` needs ``Authorization: Bearer <read or API token>`` (:func:`read_guard`, a
middleware of the main app); ``/healthz`` and ``/readyz`` stay open (probes carry no
credentials). The webhooks have their own scheme (``webhooks.py``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_ok(request: web.Request, *tokens: bytes | None) -> bool:
    """True when the request's ``Authorization: Bearer`` is one of ``tokens`` (constant time;
    every token is compared, so the timing does not say which one matched)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    value = given.strip().encode("utf-8", "replace")
    matched = False
    for token in tokens:
        if token is not None and hmac.compare_digest(token, value):
            matched = True
    return matched


def unauthorized(request: web.Request, message: str) -> web.Response:
    """401 with a bearer challenge; logged as ``api_unauthorized``."""
    log.warning("api_unauthorized", path=request.path)
    return web.json_response(
        {"error": message}, status=401, headers={"WWW-Authenticate": 'Bearer realm="trueup"'}
    )


def protected_read(method: str, canonical: str) -> bool:
    """Whether a request needs the read token: a GET/HEAD of /metrics or under /api/v1/,
    judged by the matched route's canonical path (no spelling of a path slips past)."""
    return method in ("GET", "HEAD") and (
        canonical == "/metrics" or canonical.startswith("/api/v1/")
    )


def read_guard(read_token: bytes | None, api_token: bytes | None) -> Middleware:
    """The main app's middleware: with a read token, protected reads need it (or the API
    token); without one, every read is open."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if read_token is not None:
            resource = request.match_info.route.resource
            canonical = resource.canonical if resource is not None else ""
            if protected_read(request.method, canonical) and not bearer_ok(
                request, read_token, api_token
            ):
                return unauthorized(
                    request, "missing or wrong bearer token (--api-read-token-file)"
                )
        return await handler(request)

    return guard
