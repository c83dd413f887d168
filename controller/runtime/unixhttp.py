"""Plain HTTP/1.1 over an engine's unix socket, for every engine call that is not a stream.

`DockerRuntime` sends its reads (``list``, ``inspect``, image lookups, ``ping``, ``version``,
``stats``) and its writes (networks, volumes, create, start, stop, kill, wait, remove) through
`request` instead of the docker SDK: one short-lived connection per request, a JSON body when
there is one, and no SDK import, so a one-shot ``trueup apply`` that creates or replaces
containers never pays the SDK's (and requests') import time. What still needs the SDK is what
streams or is multiplexed: logs, events, builds, pulls and exec. Errors are standard
``OSError``/``TimeoutError`` for the transport and `EngineHTTPError` for a status of 400 or
more; `runtime.docker.translate` maps both.
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


def request(
    path: str, method: str, url_path: str, *, body: bytes | None = None, timeout: float
) -> tuple[str, bytes]:
    """Send ``method url_path`` (with a JSON ``body``, if any) to the socket at ``path``;
    returns (content type, body).

    ``timeout`` bounds connecting and each wait for the engine's next bytes. Raises
    `EngineHTTPError` for statuses >= 400, ``ConnectionError`` for a truncated answer,
    ``TimeoutError`` when the engine stalls for ``timeout`` seconds, ``OSError`` otherwise.
    """
    head = (
        f"{method} {url_path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: trueup\r\n"
        "Accept: application/json\r\nConnection: close\r\n"
    )
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    elif method not in ("GET", "HEAD"):
        head += "Content-Length: 0\r\n"  # as requests sends it: an empty body, said so
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(head.encode("ascii") + b"\r\n" + (body or b""))
        chunks = []
        while data := sock.recv(262144):
            chunks.append(data)
    raw = b"".join(chunks)
    head_bytes, sep, answer = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError("the engine closed the connection before answering")
    lines = head_bytes.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise ConnectionError(f"not an HTTP answer: {lines[0][:80]!r}") from exc
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        answer = _dechunk(answer)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if len(answer) < length:
            raise ConnectionError("the engine closed the connection mid-answer")
        answer = answer[:length]
    content_type = headers.get("content-type", "")
    if status >= 400:
        raise EngineHTTPError(status, explanation(content_type, answer))
    return content_type, answer


def get(path: str, url_path: str, *, timeout: float) -> tuple[str, bytes]:
    """`request` with GET."""
    return request(path, "GET", url_path, timeout=timeout)


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


def explanation(content_type: str, body: bytes) -> str:
    """The engine's error message: the JSON ``message`` when there is one, else the text."""
    text = body.decode("utf-8", "replace").strip()
    if "json" in content_type:
        try:
            message = json.loads(text).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return str(message)
    return text
