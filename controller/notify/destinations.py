"""Where messages go: a generic JSON webhook signed with HMAC-SHA256, and Apprise URLs.

The webhook's body is a CloudEvents 1.0 structured event (``type`` ``io.trueup.notification``,
``data`` the notice's JSON); header ``X-Trueup-Signature: sha256=<hex HMAC of the body>``
under the key read from ``secret_file``. Apprise speaks Slack, Discord, Teams, Telegram, ntfy,
Gotify, Matrix, e-mail and more through one URL scheme; it is blocking, so it runs in a thread.
URLs come from files; logs and records only ever show them redacted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from controller.errors import ConfigError
from controller.notify.delivery import Result, post_json, redact
from controller.notify.message import Notice, cut

APPRISE_LIMIT = 4000
SIGNATURE_HEADER = "X-Trueup-Signature"


class Destination(Protocol):
    """A named place one notice at a time is sent to (one attempt; the sender retries)."""

    name: str
    kinds: frozenset[str]
    min_severity: str
    max_per_minute: int

    async def send(self, notice: Notice) -> Result: ...


def read_file(path: Path, what: str) -> str:
    """A file's stripped text; a ``ConfigError`` naming the file (never its content)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.__class__.__name__}") from exc
    if not text:
        raise ConfigError(f"the {what} file {path} is empty")
    return text


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def cloudevent(notice: Notice) -> dict[str, object]:
    """The notice as a CloudEvent: its ``id`` and ``time`` are the notice's, so a retry is
    the same event (CloudEvents: consumers may treat a repeated source + id as a duplicate)."""
    moment = datetime.fromtimestamp(time.time() if notice.at is None else notice.at, UTC)
    return {
        "specversion": "1.0",
        "type": "io.trueup.notification",
        "source": f"trueup/{notice.instance}",
        "id": notice.id or str(uuid.uuid4()),
        "time": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "subject": notice.revision or "",
        "data": notice.to_json(),
    }


@dataclass
class Webhook:
    """A generic webhook: JSON CloudEvent, signed when a secret is configured."""

    name: str
    url: str
    secret: bytes | None
    kinds: frozenset[str]
    min_severity: str = "info"
    max_per_minute: int = 20
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"Webhook({self.name!r}, {redact(self.url)})"

    async def send(self, notice: Notice) -> Result:
        body = json.dumps(cloudevent(notice), sort_keys=True).encode()
        headers = {"Content-Type": "application/cloudevents+json"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        return await post_json(self.url, body, headers, timeout=self.timeout)


@dataclass
class AppriseDestination:
    """An Apprise URL (``json://``, ``ntfy://``, ``gotify://``, ``slack://`` ...)."""

    name: str
    url: str
    kinds: frozenset[str]
    min_severity: str = "info"
    max_per_minute: int = 20
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"AppriseDestination({self.name!r}, {redact(self.url)})"

    def check(self) -> None:
        """A ``ConfigError`` when Apprise does not know the URL's scheme."""
        if _apprise_object(self.url, self.timeout) is None:
            raise ConfigError(f"destination {self.name}: Apprise cannot use {redact(self.url)}")

    async def send(self, notice: Notice) -> Result:
        title, body = notice.title(), notice.body(APPRISE_LIMIT)
        try:
            ok = await asyncio.wait_for(
                asyncio.to_thread(_apprise_send, self.url, title, body, self.timeout),
                self.timeout + 5,
            )
        except TimeoutError:
            return Result("retry", f"no answer within {self.timeout:g}s")
        return Result("ok") if ok else Result("retry", "Apprise could not deliver")


def _apprise_object(url: str, timeout: float) -> object | None:
    import apprise

    apobj = apprise.Apprise()
    return apobj if apobj.add(url) else None


def _apprise_send(url: str, title: str, body: str, timeout: float) -> bool:
    import logging

    import apprise

    logging.getLogger("apprise").setLevel(logging.CRITICAL)  # it logs URLs with their tokens
    apobj = apprise.Apprise()
    if not apobj.add(url):
        return False
    return bool(apobj.notify(title=cut(title, 250), body=body))
