"""Who may read the API, and where the webhooks are served: the read token and --hooks-listen,
on an in-process controller (FakeRuntime) whose server listens on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from controller.http.webhooks import sign
from tests.http.conftest import SECRET, TOKEN, Served, serve

READ = "read-only-token"


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **options: Any) -> AsyncIterator[Served]:
    """A controller (first pass done) and its server, built with ``options``."""
    s = await serve(tmp_path, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(s.controller.run(stop))
    try:
        await asyncio.wait_for(s.controller.first_pass_done.wait(), 10)
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


async def get(s: Served, url: str, auth: str | None = None, method: str = "GET") -> int:
    headers = {"Authorization": auth} if auth is not None else {}
    async with s.http.request(method, url, headers=headers) as r:
        return r.status


async def test_read_token_guards_every_read_but_the_probes(tmp_path: Path) -> None:
    """With a read token, /metrics and every GET under /api/v1 answer 401 without it or with
    a wrong one, and serve the read or the API token; /healthz and /readyz stay open."""
    async with running(tmp_path, read_token=READ.encode()) as s:
        reads = {
            "/api/v1/status": 200,
            "/api/v1/apps/web": 200,
            "/api/v1/apps/nope": 404,
            "/metrics": 200,
        }
        for path, ok in reads.items():
            url = s.url + path
            assert await get(s, url) == 401, path
            assert await get(s, url, "Bearer wrong") == 401, path
            assert await get(s, url, f"Basic {READ}") == 401, path
            assert await get(s, url, method="HEAD") == 401, path
            assert await get(s, url, f"Bearer {READ}") == ok, path
            assert await get(s, url, f"Bearer {TOKEN}") == ok, path
        assert await get(s, s.url + "/healthz") == 200
        assert await get(s, s.url + "/readyz") == 200
        async with s.http.get(s.url + "/api/v1/status") as r:
            assert r.headers["WWW-Authenticate"] == 'Bearer realm="trueup"'
            assert "web" not in await r.text()
        # the read token is not the API token: it cannot ask for a pass
        async with s.http.post(
            s.url + "/api/v1/reconcile", headers={"Authorization": f"Bearer {READ}"}
        ) as r:
            assert r.status == 401


async def test_without_a_read_token_reads_stay_open(tmp_path: Path) -> None:
    """No read token configured: reads need no credentials, as before."""
    async with running(tmp_path) as s:
        assert await get(s, s.url + "/api/v1/status") == 200
        assert await get(s, s.url + "/metrics") == 200


async def test_hooks_listener_serves_the_hooks_and_nothing_else(tmp_path: Path) -> None:
    """With a hooks listener, /hooks/* answers there (signed push 202) and is gone from the
    main listener (404); the hooks listener serves no API, metrics or probes."""
    async with running(tmp_path, hooks_listen="127.0.0.1:0") as s:
        hooks = s.server.hooks
        assert hooks is not None and hooks.url is not None and hooks.url != s.url
        body = b'{"ref": "refs/heads/main"}'
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(SECRET.encode(), body)}
        async with s.http.post(f"{hooks.url}/hooks/github", data=body, headers=headers) as r:
            assert r.status == 202
        async with s.http.post(f"{s.url}/hooks/github", data=body, headers=headers) as r:
            assert r.status == 404
        for path in ("/api/v1/status", "/metrics", "/healthz", "/readyz"):
            assert await get(s, hooks.url + path) == 404, path
            assert await get(s, s.url + path) == 200, path
        async with s.http.post(
            f"{hooks.url}/api/v1/reconcile", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            assert r.status == 404
