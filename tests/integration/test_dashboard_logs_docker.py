"""The dashboard's log stream on the real dockerd: the engine's log stream is open only while
the client is, and closed soon after it goes, even when the container prints nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

import aiohttp
import pytest

from controller.daemon.loop import Controller
from controller.http.metrics import Metrics
from controller.http.server import Server
from controller.reconciler import Reconciler
from controller.runtime import connect
from controller.source import GitSource, RevisionWatcher
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

QUIET = """\
apiVersion: trueup/v1
kind: App
metadata: {name: quiet}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo hello from quiet; exec sleep 300"]
  init: true
  stopGracePeriod: 1s
"""


def log_threads() -> int:
    """The engine log streams open in this process (each is read by a thread of its own)."""
    return sum(1 for t in threading.enumerate() if t.name == "trueup-logs" and t.is_alive())


async def test_log_stream_closes_the_engine_stream_when_the_client_goes(
    tmp_path: Path, instance: str
) -> None:
    """A follow stream holds one engine log stream; after the client disconnects (and the
    container prints nothing more) the engine stream is closed within a few seconds."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/quiet.yaml": QUIET})
    runtime = connect(
        "docker", os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
        instance=instance, timeout=30,
    )  # fmt: skip
    source = GitSource(f"file://{repo}", state_dir=tmp_path / "state")
    controller = Controller(
        Reconciler(source, ContainerTarget(runtime), instance=instance),
        runtime,
        watcher=RevisionWatcher(source, interval=600),
        history=None,
        interval=600,
    )
    server = Server(controller, metrics=Metrics(process=False), listen="127.0.0.1:0",
                    instance=instance)  # fmt: skip
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    http = aiohttp.ClientSession()
    try:
        async with asyncio.timeout(60):
            await controller.first_pass_done.wait()
        before = log_threads()
        response = await http.get(f"{server.url}/api/v1/apps/quiet/logs?follow=1&tail=10")
        async with asyncio.timeout(20):
            while b"hello from quiet" not in await response.content.readline():
                pass
        assert log_threads() == before + 1
        response.close()  # the browser went
        async with asyncio.timeout(5):
            while log_threads() > before:
                await asyncio.sleep(0.1)
    finally:
        await http.close()
        stop.set()
        with contextlib.suppress(Exception):
            await task
        await server.close()
        await runtime.close()
        source.close()
