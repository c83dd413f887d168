"""Plain HTTP/1.1 GETs over an engine's unix socket, for the hot read-only engine calls.

`DockerRuntime` sends its reads that run on every pass or poll (``list``, ``inspect``, image
lookups, ``_ping``, ``version``) through here instead of the docker SDK: one short-lived
connection per request and no SDK import, so a one-shot ``trueup apply`` with nothing to do
never pays the SDK's (and requests') import time. Everything that writes or streams still goes
through the SDK. Errors are standard ``OSError``/``TimeoutError`` for the transport and
`EngineHTTPError` for a status of 400 or more; `runtime.docker.translate` maps both.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote, urlencode


class EngineHTTPError(Exception):
    """The engine answered with an error status; ``explanation`` is its message."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation


def socket_path(url: str) -> str | None:
    """The socket path of a ``unix://`` engine URL, None for any other URL."""
    if url.startswith("unix://"):
        return url.removeprefix("unix://") or None
    return None


def api_path(template: str, *args: str, query: dict[str, str] | None = None) -> str:
    """``/v1.41/containers/{}/json`` with each argument quoted, plus the query string."""
    path = template.format(*(quote(a, safe="/:@") for a in args))
    return f"{path}?{urlencode(query)}" if query else path


def get(path: str, url_path: str, *, timeout: float) -> tuple[str, bytes]:
    """GET ``url_path`` on the socket at ``path``; returns (content type, body).

    Raises `EngineHTTPError` for statuses >= 400, ``ConnectionError`` for a truncated answer,
    ``TimeoutError`` when the engine stalls for ``timeout`` seconds, ``OSError`` otherwise.
    """
    request = (
        f"GET {url_path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: trueup\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        chunks = []
        while data := sock.recv(262144):
            chunks.append(data)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError("the engine closed the connection before answering")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise ConnectionError(f"not an HTTP answer: {lines[0][:80]!r}") from exc
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if len(body) < length:
            raise ConnectionError("the engine closed the connection mid-answer")
        body = body[:length]
    content_type = headers.get("content-type", "")
    if status >= 400:
        raise EngineHTTPError(status, _explanation(content_type, body))
    return content_type, body


def get_json(path: str, url_path: str, *, timeout: float) -> Any:
    """`get`, with the body decoded as JSON."""
    _, body = get(path, url_path, timeout=timeout)
    return json.loads(body)


def _dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    at = 0
    while True:
        end = body.find(b"\r\n", at)
        if end < 0:
            raise ConnectionError("the engine closed the connection mid-answer")
        size = int(body[at:end].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        start = end + 2
        if len(body) < start + size:
            raise ConnectionError("the engine closed the connection mid-answer")
        out.append(body[start : start + size])
        at = start + size + 2


def _explanation(content_type: str, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    if "json" in content_type:
        try:
            message = json.loads(text).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return str(message)
    return text
