"""How trueup talks to a Docker-compatible engine: one `Transport` per engine URL.

`Transport.call` sends a request that is not a stream: on a ``unix://`` engine as plain
HTTP/1.1 over the socket (`request`: one short-lived connection, a JSON body when there is one,
and no docker SDK import, so a one-shot ``trueup apply`` never pays the SDK's and requests'
import time); on any other URL (``tcp://``) the same request through the SDK client's session.
What streams or is multiplexed (logs, events, builds, pulls, exec) uses the SDK's low-level
`APIClient` (`Transport.client`, `Transport.streams`), imported on first use, and
`Transport.pump` carries a blocking stream from a thread into the event loop.
`Transport.run` runs a blocking call off the loop under a deadline with its requests counted
per operation (``calls``), and turns every failure into trueup's own errors (`translate`): an
error status (`EngineHTTPError`) by its code, a stalled or cut connection as transient, the
SDK's and requests' exceptions by kind, the cause kept. The runtime adapters (`docker.py`,
`podman.py`, `swarm.py`) hold one; nothing else in trueup speaks to an engine.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import structlog

from controller.errors import (
    BuildFailed,
    ContainerNotFound,
    ImageNotFound,
    RuntimeRejected,
    RuntimeTimeout,
    RuntimeUnavailable,
    TrueupError,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

API_VERSION = "1.41"  # Docker 20.10 and Podman 4's compat API; newer engines accept it too


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
    path: str,
    method: str,
    url_path: str,
    *,
    body: bytes | None = None,
    timeout: float,
    content_type: str = "application/json",
) -> tuple[str, bytes]:
    """Send ``method url_path`` (with a ``body`` of ``content_type``, if any) to the socket at
    ``path``; returns (content type, body).

    ``timeout`` bounds connecting and each wait for the engine's next bytes. Raises
    `EngineHTTPError` for statuses >= 400, ``ConnectionError`` for a truncated answer,
    ``TimeoutError`` when the engine stalls for ``timeout`` seconds, ``OSError`` otherwise.
    """
    head = (
        f"{method} {url_path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: trueup\r\n"
        "Accept: application/json\r\nConnection: close\r\n"
    )
    if body is not None:
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
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


def translate(exc: BaseException, *, op: str, subject: str = "") -> TrueupError:
    """Map a docker/requests/OS exception to trueup's transient or permanent errors."""
    what = f"{op} {subject}".strip()
    if isinstance(exc, TrueupError):
        return exc
    if isinstance(exc, EngineHTTPError):
        return _from_status(exc.status, exc.explanation, what=what, op=op)
    # The SDK and requests are imported lazily: an exception can only be theirs once they are.
    errors: Any = sys.modules.get("docker.errors")
    http: Any = sys.modules.get("requests.exceptions")
    if errors is not None and isinstance(exc, errors.ImageNotFound):
        return ImageNotFound(f"{what}: image not found: {exc.explanation or exc}")
    if errors is not None and isinstance(exc, errors.BuildError):
        lines = [str(c.get("stream") or c.get("error") or "").rstrip() for c in exc.build_log]
        return BuildFailed(f"{what}: {exc.msg}", log_tail=[x for x in lines if x][-20:])
    if errors is not None and isinstance(exc, errors.APIError):
        return _from_status(exc.status_code, str(exc.explanation or exc), what=what, op=op)
    if isinstance(exc, TimeoutError) or (http is not None and isinstance(exc, http.Timeout)):
        return RuntimeTimeout(f"{what}: engine did not answer in time")
    if (http is not None and isinstance(exc, http.RequestException)) or (
        errors is not None and isinstance(exc, errors.DockerException)
    ):
        return RuntimeUnavailable(f"{what}: engine unreachable: {exc}")
    if isinstance(exc, OSError):
        return RuntimeUnavailable(f"{what}: engine unreachable: {exc}")
    return RuntimeUnavailable(f"{what}: unexpected engine failure: {type(exc).__name__}: {exc}")


def _from_status(code: int | None, explanation: str, *, what: str, op: str) -> TrueupError:
    """An engine's error status as trueup's error: 5xx transient, 404 not found, else refused."""
    if code is None or code >= 500:
        return RuntimeUnavailable(f"{what}: engine error {code}: {explanation}")
    if code == 404:
        if "image" in explanation.lower() and op in ("create", "image_exists", "build"):
            return ImageNotFound(f"{what}: {explanation}")
        return ContainerNotFound(f"{what}: {explanation}")
    return RuntimeRejected(f"{what}: engine refused ({code}): {explanation}")


def decode_answer(content_type: str, answer: bytes) -> Any:
    """An answer's body as `Transport.call` returns it: None when empty, the text of a
    ``text/...`` answer (``/_ping``'s ``OK``), else JSON (as the SDK did: Podman's stats come
    without a content type)."""
    if not answer.strip():
        return None
    if content_type.startswith("text/"):
        return answer.decode("utf-8", "replace")
    return json.loads(answer)


class Transport:
    """Requests to the engine at ``url`` (``unix://``, ``tcp://``), counted per operation.

    Construction does no I/O. ``timeout`` bounds every request that is not a stream.
    ``calls`` counts HTTP requests (of any answer status) by the operation they were made
    for (`run`'s ``op``; ``other`` outside one).
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.socket = socket_path(url)
        """The socket path of a ``unix://`` engine (requests bypass the SDK), else None."""
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._local = threading.local()
        self._sdk_client: Any = None  # made on first use: see the module docstring
        self._sdk_lock = threading.Lock()
        self._stream_client: Any = None  # no read deadline: follow, events, builds

    @property
    def client(self) -> Any:
        """The SDK's low-level client with the request deadline (made on first use)."""
        with self._sdk_lock:
            if self._sdk_client is None:
                self._sdk_client = self._new_client(self.timeout)
            return self._sdk_client

    def streams(self) -> Any:
        """The SDK's low-level client without a read deadline, for streams (made on first use)."""
        if self._stream_client is None:
            self._stream_client = self._new_client(None)
        return self._stream_client

    def _new_client(self, timeout: float | None) -> Any:
        import docker

        client = docker.APIClient(base_url=self.url, version=API_VERSION, timeout=timeout)
        client.hooks["response"].append(self.count)
        return client

    def call(
        self,
        method: str,
        template: str,
        *args: str,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        prefix: str = f"/v{API_VERSION}",
        tar: bytes | None = None,
    ) -> Any:
        """One request that is not a stream, e.g. ``call("POST", "/containers/{}/start", id)``.

        Over the unix socket without the SDK when there is one, else through the SDK client's
        session; counted once per request either way. ``timeout`` (default: the transport's)
        bounds connecting and each wait for the engine. Returns the answer as `decode_answer`
        reads it. Raises `EngineHTTPError` for a status >= 400, and ``TimeoutError``,
        ``ConnectionError`` or another ``OSError`` when the transport fails.
        """
        url_path = api_path(f"{prefix}{template}", *args, query=dict(query) if query else None)
        data = tar if tar is not None else None if body is None else json.dumps(body).encode()
        kind = "application/x-tar" if tar is not None else "application/json"
        limit = self.timeout if timeout is None else timeout
        if self.socket is None:
            return decode_answer(*self._sdk_request(method, url_path, data, limit, kind))
        # counted like the SDK's response hook: once an answer (of any status) came back
        try:
            content_type, answer = request(
                self.socket, method, url_path, body=data, timeout=limit, content_type=kind
            )
        except EngineHTTPError:
            self.count(None)
            raise
        self.count(None)
        return decode_answer(content_type, answer)

    def _sdk_request(
        self,
        method: str,
        url_path: str,
        data: bytes | None,
        timeout: float,
        kind: str = "application/json",
    ) -> tuple[str, bytes]:
        """`call`'s request through the SDK client's session, for engines not on a socket."""
        import requests.exceptions

        client = self.client
        headers = {"Content-Type": kind} if data is not None else {}
        try:
            response = client.request(
                method, f"{client.base_url}{url_path}", data=data, headers=headers, timeout=timeout
            )
        except requests.exceptions.Timeout as exc:
            raise TimeoutError(f"no answer within {timeout:.0f}s: {exc}") from exc
        except requests.exceptions.ConnectionError as exc:
            raise ConnectionError(str(exc)) from exc
        content_type = str(response.headers.get("Content-Type") or "")
        if response.status_code >= 400:
            raise EngineHTTPError(response.status_code, explanation(content_type, response.content))
        return content_type, bytes(response.content)

    def count(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        """Count one request under this thread's operation (also the SDK's response hook)."""
        op = getattr(self._local, "op", "other")
        with self._calls_lock:
            self.calls[op] += 1
        return response

    def in_op(self, op: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in this thread with its HTTP requests counted under ``op``."""
        previous = getattr(self._local, "op", "other")
        self._local.op = op
        try:
            return fn(*args, **kwargs)
        finally:
            self._local.op = previous

    async def run(
        self,
        op: str,
        fn: Callable[..., T],
        *args: Any,
        subject: str = "",
        deadline: float | None = None,
        **kwargs: Any,
    ) -> T:
        """Run a blocking engine call off the loop, under a deadline, errors translated."""
        limit = deadline if deadline is not None else self.timeout + 1.0
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.in_op, op, fn, *args, **kwargs), timeout=limit
            )
        except TimeoutError as exc:
            raise RuntimeTimeout(f"{op} {subject}: no answer within {limit:.0f}s") from exc
        except Exception as exc:
            raise translate(exc, op=op, subject=subject) from exc

    async def pump(
        self, op: str, open_stream: Callable[[], Any], subject: str = ""
    ) -> AsyncIterator[Any]:
        """Iterate a blocking SDK stream in a thread; closing the iterator closes the stream."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stopped = threading.Event()
        streams: list[Any] = []

        def put(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the loop is closed: nobody listens any more
                stopped.set()

        def worker() -> None:
            try:
                stream = self.in_op(op, open_stream)
                streams.append(stream)
                if stopped.is_set():
                    _close_quietly(stream)
                    return
                for item in stream:
                    if stopped.is_set():
                        return
                    put("item", item)
                put("end", None)
            except Exception as exc:
                if not stopped.is_set():
                    put("error", exc)

        threading.Thread(target=worker, name=f"trueup-{op}", daemon=True).start()
        try:
            while True:
                kind, item = await queue.get()
                if kind == "item":
                    yield item
                elif kind == "end":
                    return
                else:
                    raise translate(item, op=op, subject=subject) from item
        finally:
            stopped.set()
            for stream in streams:
                _close_quietly(stream)

    async def close(self) -> None:
        """Close the SDK's HTTP connections (the socket path keeps none open)."""
        for client in (self._sdk_client, self._stream_client):
            if client is not None:
                await asyncio.to_thread(client.close)


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # closing a half-dead socket may fail; nothing is left to clean up
        log.debug("stream_close_failed")
