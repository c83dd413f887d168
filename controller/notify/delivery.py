"""Sending over HTTP: one delivery's answer, and retries with backoff that honour 429.

Used by the destinations and commit statuses. An answer is ``ok``, ``retry`` (429, 5xx, a
timeout, a refused connection; with the server's ``Retry-After`` when it gave one) or
``failed`` (any other 4xx). Secrets never appear in a ``Result``'s detail: URLs are shown
redacted (:func:`redact`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

RETRIES = 3
BACKOFF_S = 1.0
RETRY_AFTER_MAX_S = 60.0


@dataclass(frozen=True)
class Result:
    """How one attempt went."""

    outcome: str
    """``ok``, ``retry`` or ``failed``."""
    detail: str = ""
    retry_after: float | None = None


def redact(url: str) -> str:
    """``url`` without credentials, query or path past the host (they carry tokens)."""
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^@/]*@)?([^/?#]*)", url)
    return f"{match.group(1)}{match.group(2)}/…" if match else "(url)"


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(RETRY_AFTER_MAX_S, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


async def post_json(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    method: str = "POST",
) -> Result:
    """One request; its answer classified."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.request(
                method, url, data=body, headers={"Content-Type": "application/json", **headers}
            ) as answer,
        ):
            text = (await answer.text(errors="replace"))[:200]
            if answer.status < 300:
                return Result("ok", f"HTTP {answer.status}")
            detail = f"HTTP {answer.status}: {text.strip().splitlines()[0] if text.strip() else ''}"
            if answer.status == 429 or answer.status >= 500:
                return Result("retry", detail, retry_after(answer.headers.get("Retry-After")))
            return Result("failed", detail)
    except TimeoutError:
        return Result("retry", f"no answer within {timeout:g}s")
    except aiohttp.ClientError as exc:
        return Result("retry", f"{type(exc).__name__}: {redact(url)}")


async def with_retries(
    attempt: Callable[[], Awaitable[Result]],
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    retries: int = RETRIES,
    backoff_s: float = BACKOFF_S,
) -> Result:
    """``attempt`` until ``ok`` or ``failed``, at most ``retries`` more times, waiting the
    server's Retry-After when it gave one, else ``backoff_s`` doubling."""
    result = await attempt()
    delay = backoff_s
    for _ in range(retries):
        if result.outcome != "retry":
            return result
        await sleep(result.retry_after if result.retry_after is not None else delay)
        delay *= 2
        result = await attempt()
    return Result("failed", result.detail) if result.outcome == "retry" else result
