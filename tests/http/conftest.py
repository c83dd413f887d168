"""Fixtures for the HTTP surface: an in-process controller and server on a free loopback port.

The controller runs on FakeRuntime against a real git repository served as a remote
(``file://``), so the watcher polls (every ten minutes here) and only a request can make it
fetch early. The server binds 127.0.0.1 port 0; tests talk to it with a real aiohttp client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.http.metrics import Metrics
from controller.http.server import Server
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource, RevisionWatcher
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

TOKEN = "s3cret-token"
SECRET = "It's a Secret to Everybody"


def manifest(name: str, image: str = "busybox:1.36") -> str:
    return (
        f"apiVersion: trueup/v1\nkind: App\nmetadata: {{name: {name}}}\n"
        f"spec: {{image: '{image}'}}\n"
    )


@dataclass
class Served:
    repo: Path
    runtime: FakeRuntime
    controller: Controller
    server: Server
    metrics: Metrics
    http: aiohttp.ClientSession
    fetches: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server.url is not None
        return self.server.url

    async def settle(self, quiet: float = 0.3) -> None:
        """Wait until no pass has run for ``quiet`` seconds (startup's follow-up included)."""
        async with asyncio.timeout(10):
            while True:
                seen = self.controller.passes
                await asyncio.sleep(quiet)
                if self.controller.passes == seen and not self.controller.work.pending:
                    return

    async def passes_after(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.controller.passes <= count:
                await asyncio.sleep(0.02)


async def serve(
    tmp_path: Path, *, token: bool = True, secret: bool = True, **options: Any
) -> Served:
    """A controller and its server (not started); ``options`` go to `Server`."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": manifest("web")})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36", "busybox:1.37"])
    source = GitSource(f"file://{repo}", state_dir=tmp_path / "state")
    metrics = Metrics(process=False)
    fetches: list[float] = []

    def on_fetch(duration: float, error: object) -> None:
        fetches.append(duration)
        metrics.fetch_finished(duration, error)

    history = History(tmp_path / "state" / "history.db")
    controller = Controller(
        Reconciler(source, ContainerTarget(runtime), instance="t"),
        runtime,
        watcher=RevisionWatcher(source, interval=600, on_fetch=on_fetch),
        history=history,
        interval=600,
    )
    metrics.attach(controller)
    server = Server(
        controller,
        metrics=metrics,
        listen="127.0.0.1:0",
        instance="t",
        api_token=TOKEN.encode() if token else None,
        webhook_secret=SECRET.encode() if secret else None,
        history=history,
        **options,
    )
    await server.start()
    return Served(repo, runtime, controller, server, metrics, aiohttp.ClientSession(), fetches)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """A running controller (first pass done) with its server; token and secret configured."""
    s = await serve(tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(s.controller.run(stop))
    try:
        async with asyncio.timeout(10):
            await s.controller.first_pass_done.wait()
        await s.settle()
        yield s
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()
        assert s.controller.history is not None
        s.controller.history.close()
