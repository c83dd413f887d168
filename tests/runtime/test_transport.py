"""The SDK-free HTTP path: answers are read whole (chunked or sized), bodies are sent typed
and sized, errors keep their kind."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.errors import ContainerNotFound, ImageNotFound, RuntimeUnavailable
from controller.runtime import transport
from controller.runtime.transport import translate


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """A one-shot-per-connection unix socket server: answers the queued raw responses."""
    path = str(tmp_path / "engine.sock")
    answers: list[bytes] = []
    requests: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                requests.append(conn.recv(65536))
                conn.sendall(answers.pop(0))

    threading.Thread(target=serve, daemon=True).start()
    yield path, answers, requests
    server.close()


def test_chunked_json_answer_is_reassembled(engine: tuple[str, list[bytes], list[bytes]]) -> None:
    """A chunked body (how the engine sends long lists) comes back whole and decoded."""
    path, answers, requests = engine
    body = b'[{"Id": "a"}, {"Id": "b"}]'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
    answers.append(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    url = transport.api_path("/v1.41/containers/json", query={"all": "1"})
    assert transport.get_json(path, url, timeout=5) == [{"Id": "a"}, {"Id": "b"}]
    assert requests[0].startswith(b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\n")


def test_a_write_sends_its_json_body_with_type_and_length(
    engine: tuple[str, list[bytes], list[bytes]],
) -> None:
    """A POST carries its JSON body (typed and sized); one without a body says it is empty,
    and an empty answer (204) is fine."""
    path, answers, requests = engine
    answers.append(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
        b'Content-Length: 11\r\n\r\n{"Id":"c1"}'
    )
    answers.append(b"HTTP/1.1 204 No Content\r\n\r\n")
    body = b'{"Image":"busybox:1.36"}'
    url = transport.api_path("/v1.41/containers/create", query={"name": "web-0"})
    answer = transport.request(path, "POST", url, body=body, timeout=5)
    assert answer == ("application/json", b'{"Id":"c1"}')
    head, _, sent = requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1.41/containers/create?name=web-0 HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert b"\r\nContent-Length: 24" in head
    assert sent == body
    url = transport.api_path("/v1.41/containers/{}/start", "c1")
    assert transport.request(path, "POST", url, timeout=5) == ("", b"")
    assert b"\r\nContent-Length: 0\r\n" in requests[1]


def test_error_status_keeps_the_engine_message(
    engine: tuple[str, list[bytes], list[bytes]],
) -> None:
    """A 404 carries the engine's message and translates like the SDK's error would."""
    path, answers, _ = engine
    message = b'{"message":"No such image: nope:1"}'
    answers.append(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(message), message)
    )
    with pytest.raises(transport.EngineHTTPError) as caught:
        transport.get(path, transport.api_path("/v1.41/images/{}/json", "nope:1"), timeout=5)
    assert (caught.value.status, caught.value.explanation) == (404, "No such image: nope:1")
    assert isinstance(translate(caught.value, op="image_exists"), ImageNotFound)
    assert isinstance(translate(caught.value, op="inspect"), ContainerNotFound)
    server_error = transport.EngineHTTPError(500, "boom")
    assert isinstance(translate(server_error, op="list"), RuntimeUnavailable)


def test_truncated_answer_is_a_connection_error(
    engine: tuple[str, list[bytes], list[bytes]],
) -> None:
    """An answer cut short (engine restarting) is an unreachable engine, not a short list."""
    path, answers, _ = engine
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{")
    with pytest.raises(ConnectionError):
        transport.get(path, "/_ping", timeout=5)
    assert isinstance(translate(ConnectionError("cut"), op="list"), RuntimeUnavailable)


def test_no_engine_is_an_os_error(tmp_path: Path) -> None:
    """A missing socket raises OSError, which translates to an unreachable engine."""
    with pytest.raises(OSError) as caught:
        transport.get(str(tmp_path / "none.sock"), "/_ping", timeout=1)
    assert isinstance(translate(caught.value, op="ping"), RuntimeUnavailable)


def test_answers_decode_by_content_type() -> None:
    """Empty is None, ``text/...`` is text (``/_ping``'s OK), anything else is JSON (Podman's
    stats come without a content type)."""
    assert transport.decode_answer("application/json", b"  \r\n") is None
    assert transport.decode_answer("text/plain; charset=utf-8", b"OK") == "OK"
    assert transport.decode_answer("", b'{"cpu_stats": {}}') == {"cpu_stats": {}}


async def test_calls_are_counted_per_operation_and_errors_translated(
    engine: tuple[str, list[bytes], list[bytes]],
) -> None:
    """Each request run for an operation counts under it, an error answer too, and an error
    status comes out of `Transport.run` as trueup's error with the engine's message."""
    path, answers, requests = engine
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK")
    message = b'{"message":"No such container: gone"}'
    answers.append(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(message), message)
    )
    engine_transport = transport.Transport(f"unix://{path}", timeout=5)
    assert engine_transport.socket == path
    ok = await engine_transport.run("ping", engine_transport.call, "GET", "/_ping")
    assert ok == "OK"
    with pytest.raises(ContainerNotFound, match="inspect gone: No such container: gone"):
        await engine_transport.run(
            "inspect", engine_transport.call, "GET", "/containers/{}/json", "gone", subject="gone"
        )
    assert engine_transport.calls == {"ping": 1, "inspect": 1}
    assert requests[0].startswith(b"GET /v1.41/_ping HTTP/1.1\r\n")
    assert requests[1].startswith(b"GET /v1.41/containers/gone/json HTTP/1.1\r\n")
    await engine_transport.close()


@pytest.mark.integration
@pytest.mark.usefixtures("docker_engine")
def test_a_pass_with_nothing_to_do_never_loads_the_sdk() -> None:
    """Probing, pinging and listing on the Docker socket leave the SDK (and requests) unloaded,
    so a no-op `trueup apply` does not pay their import time."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from controller.runtime import connect\n"
        "async def main():\n"
        "    runtime = connect('auto', None, instance='sdk-free-probe')\n"
        "    assert await runtime.ping()\n"
        "    assert await runtime.list() == []\n"
        "    assert await runtime.image_exists('busybox:1.36')\n"
        "    await runtime.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('docker', 'requests', 'urllib3') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
