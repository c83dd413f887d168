"""``ContainerSpec.files`` on the real engines: uploaded into the created container, before
its process starts, with their modes and owner; also when the engine is reached over tcp://."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from controller.runtime import Runtime, connect
from controller.runtime.archive import FileContent
from controller.runtime.base import ContainerSpec
from tests.conftest import BASE_IMAGE
from tests.runtime.conftest import cleanup, docker_url

pytestmark = pytest.mark.integration

FILES = (
    FileContent("/etc/app/greeting.conf", 0o444, data=b"hello from git\n"),
    FileContent("/run/secrets/pw", 0o400, 1000, 1000, data=b"s3cr3t\n"),
    FileContent("/www/bin/run.sh", 0o555, data=b"#!/bin/sh\necho ran\n"),
)
# What the process saw the moment it started, then the files' modes and owners.
SEEN = "cat /etc/app/greeting.conf /run/secrets/pw; /www/bin/run.sh"
LIST = "stat -c '%a %u:%g %n' /etc/app/greeting.conf /run/secrets/pw /www/bin/run.sh /etc /www"


def _spec(instance: str) -> ContainerSpec:
    return ContainerSpec(
        name=f"{instance}-files-0",
        image=BASE_IMAGE,
        command=("sh", "-c", f"({SEEN}) > /tmp/seen 2>&1; exec sleep 600"),
        labels={"trueup.app": "files", "trueup.replica": "0"},
        files=FILES,
        stop_grace_period=0.5,
    )


async def _check_files(runtime: Runtime, instance: str) -> None:
    container = await runtime.create(_spec(instance))
    await runtime.start(container)
    seen = await runtime.exec(container, ["cat", "/tmp/seen"], timeout=10)
    assert seen.output == "hello from git\ns3cr3t\nran\n"
    listed = await runtime.exec(container, ["sh", "-c", LIST], timeout=10)
    assert listed.output.splitlines() == [
        "444 0:0 /etc/app/greeting.conf",
        "400 1000:1000 /run/secrets/pw",
        "555 0:0 /www/bin/run.sh",
        "755 0:0 /etc",  # the image's folder keeps its mode and owner
        "755 0:0 /www",  # a missing one is made 0755, root
    ]


async def test_files_are_in_place_before_the_process_starts(
    real_runtime: Runtime, instance: str
) -> None:
    """The process reads its files (git, secret, executable) on its first instruction; the
    modes and owner are the given ones, and the image's own folders are unchanged."""
    await _check_files(real_runtime, instance)


@contextlib.contextmanager
def _tcp_to_unix(socket_path: str) -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that forwards each connection to ``socket_path``: an
    engine reached as a remote one, with no host path shared."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def serve() -> asyncio.Server:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve())
        loop.run_forever()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
async def tcp_runtime(docker_engine: None, instance: str) -> AsyncIterator[Runtime]:
    url = docker_url()
    assert url.startswith("unix://")
    with _tcp_to_unix(url.removeprefix("unix://")) as port:
        rt = connect("docker", f"tcp://127.0.0.1:{port}", instance=instance, timeout=30)
        try:
            yield rt
        finally:
            await rt.close()
            cleanup(url, instance)


async def test_files_work_with_an_engine_reached_over_tcp(
    tcp_runtime: Runtime, instance: str
) -> None:
    """Through tcp:// (the SDK's session, no shared socket or host path) the files arrive
    the same way."""
    await _check_files(tcp_runtime, instance)


async def test_reload_updates_files_in_the_running_container_and_signals_it(
    real_runtime: Runtime, instance: str
) -> None:
    """`reload_files` keeps the container: the new content is in place, the process got the
    signal (it re-reads the file on SIGHUP), and the container now carries the new name."""
    script = (
        "trap 'cat /etc/app/conf > /tmp/seen' HUP; cat /etc/app/conf > /tmp/seen; "
        "while true; do sleep 0.1; done"
    )
    spec = ContainerSpec(
        name=f"{instance}-reload-0-aaaaaaaa",
        image=BASE_IMAGE,
        command=("sh", "-c", script),
        labels={"trueup.app": "reload", "trueup.replica": "0"},
        files=(FileContent("/etc/app/conf", 0o444, data=b"v1\n"),),
        init=True,
        stop_grace_period=0.5,
    )
    container = await real_runtime.create(spec)
    await real_runtime.start(container)
    assert (await real_runtime.exec(container, ["cat", "/tmp/seen"], timeout=10)).output == "v1\n"
    new = (FileContent("/etc/app/conf", 0o444, data=b"v2\n"),)
    renamed = f"{instance}-reload-0-bbbbbbbb"
    await real_runtime.reload_files(container, new, signal="SIGHUP", name=renamed)
    for _ in range(50):
        seen = await real_runtime.exec(container, ["cat", "/tmp/seen"], timeout=10)
        if seen.output == "v2\n":
            break
        await asyncio.sleep(0.1)
    assert seen.output == "v2\n"
    info = await real_runtime.inspect(container)
    assert info.state == "running" and info.name == renamed
