"""Who may call what on the main listener: bearer tokens, compared in constant time.

The API's actions (``POST /api/v1/reconcile``, ``.../suspend``, ``.../resume``,
``/api/v1/apply``) need the API token (``--api-token-file``; ``api.py`` and ``ops.py`` check
it, before any body is read).
With a read token (``--api-read-token-file``), every GET of ``/metrics``, under ``/api/v1/``
and of the dashboard's pages (``/``, ``/apps/*``, ``/passes/*``) needs ``Authorization:
Bearer <read or API token>`` (:func:`read_guard`, a middleware of the main app). A browser
cannot add a header to a page it navigates to, so reads also take the token as the password
of HTTP Basic (any user name): a dashboard page asks for it with a Basic challenge, and the
browser then sends it with the page's own requests and streams. Basic never authorises a
mutation (those check the bearer header only), so a credential the browser remembers cannot
be used by another site to act. ``/healthz``, ``/readyz`` and ``/static/*`` stay open
(probes carry no credentials; the script and stylesheet hold no data). The webhooks have
their own scheme (``webhooks.py``).
"""

from __future__ import annotations

import base64
import binascii
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


def basic_ok(request: web.Request, *tokens: bytes | None) -> bool:
    """True when the request's ``Authorization: Basic`` password is one of ``tokens`` (any
    user name; constant time like :func:`bearer_ok`). For reads only."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    value = decoded.partition(b":")[2]
    matched = False
    for token in tokens:
        if token is not None and hmac.compare_digest(token, value):
            matched = True
    return matched


def dashboard_page(canonical: str) -> bool:
    """Whether a route is one of the dashboard's pages (a browser navigates to them)."""
    return canonical == "/" or canonical.startswith(("/apps/", "/passes/"))


def unauthorized(request: web.Request, message: str) -> web.Response:
    """401 with a bearer challenge; logged as ``api_unauthorized``."""
    log.warning("api_unauthorized", path=request.path)
    return web.json_response(
        {"error": message}, status=401, headers={"WWW-Authenticate": 'Bearer realm="trueup"'}
    )


def basic_challenge(request: web.Request) -> web.Response:
    """401 asking the browser for the read token (as the password of HTTP Basic)."""
    log.warning("api_unauthorized", path=request.path)
    return web.Response(
        text="trueup: this dashboard needs the read token (as the password; any user name)\n",
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="trueup", charset="UTF-8"'},
    )


def protected_read(method: str, canonical: str) -> bool:
    """Whether a request needs the read token: a GET/HEAD of /metrics, under /api/v1/ or of
    a dashboard page, judged by the matched route's canonical path (no spelling of a path
    slips past)."""
    return method in ("GET", "HEAD") and (
        canonical == "/metrics" or canonical.startswith("/api/v1/") or dashboard_page(canonical)
    )


def read_guard(read_token: bytes | None, api_token: bytes | None) -> Middleware:
    """The main app's middleware: with a read token, protected reads need it (or the API
    token); without one, every read is open."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if read_token is not None:
            resource = request.match_info.route.resource
            canonical = resource.canonical if resource is not None else ""
            if protected_read(request.method, canonical) and not (
                bearer_ok(request, read_token, api_token)
                or basic_ok(request, read_token, api_token)
            ):
                if dashboard_page(canonical):
                    return basic_challenge(request)
                return unauthorized(
                    request, "missing or wrong bearer token (--api-read-token-file)"
                )
        return await handler(request)

    return guard
