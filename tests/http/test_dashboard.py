"""The dashboard on an in-process controller (FakeRuntime): pages, escaping, the events stream
(ids, resume, snapshot, keepalive), the log stream (tail bound, rate bound) and read access."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog.testing

from controller.daemon.events import EventHub
from controller.http import dashboard_streams as streams
from controller.http.dashboard_streams import RateLimit
from tests.gitutil import commit_files
from tests.http.conftest import TOKEN, Served, manifest, serve

HOSTILE = "<script>alert('x')</script> & <b>bold</b>"


async def read_events(
    response: aiohttp.ClientResponse,
    count: int,
    timeout: float = 10.0,
    until: Callable[[dict[str, Any]], bool] = lambda f: False,
) -> list[dict[str, Any]]:
    """The next ``count`` SSE frames of ``response`` (comments skipped) as dicts, or up to
    the first one ``until`` accepts."""
    frames: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while len(frames) < count:
            raw = await response.content.readline()
            if not raw:
                break
            line = raw.decode().rstrip("\n")
            if line == "":
                if "event" in current:
                    frames.append(current)
                    if until(current):
                        break
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
    return frames


async def reconcile(s: Served) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with s.http.post(f"{s.url}/api/v1/reconcile?app=web", headers=headers) as r:
        assert r.status == 202


async def test_list_page_shows_every_app_and_escapes_what_a_committer_wrote(
    served: Served,
) -> None:
    """A commit subject with markup shows as text; the row has the app's sync and health."""
    commit_files(served.repo, {"apps/api.yaml": manifest("api")}, HOSTILE + " " + "z" * 5000)
    passes = served.controller.passes
    async with served.http.post(
        f"{served.url}/api/v1/reconcile", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as r:
        assert r.status == 202
    await served.passes_after(passes)
    await served.settle()
    async with served.http.get(f"{served.url}/") as r:
        assert r.status == 200
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        html = await r.text()
    assert 'data-app="api"' in html and 'data-app="web"' in html
    assert "h-Healthy" in html and "s-Synced" in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert "z" * 150 in html and "z" * 250 not in html  # a subject is cut at 200
    async with served.http.get(f"{served.url}/static/dashboard.js") as r:
        assert r.status == 200 and r.content_type == "text/javascript"
        assert "EventSource" in await r.text()


async def test_app_and_pass_pages_show_replicas_actions_and_the_plan(served: Served) -> None:
    """The app page lists its replica and its create action; the action links to its pass,
    whose page shows the planned change and its outcome."""
    async with served.http.get(f"{served.url}/apps/web") as r:
        assert r.status == 200
        html = await r.text()
    assert "t-web-0" in html and "running" in html
    assert ">create<" in html
    pass_id = html.split('id="actions"')[1].split('href="/passes/')[1].split('"')[0]
    async with served.http.get(f"{served.url}/passes/{pass_id}") as r:
        assert r.status == 200
        page = await r.text()
    assert "a-create" in page and "r-ok" in page and "startup" in page
    for missing in ("999999", "9" * 5000, "x"):
        async with served.http.get(f"{served.url}/passes/{missing}") as r:
            assert r.status == 404
    async with served.http.get(f"{served.url}/apps/nope") as r:
        assert r.status == 404
    async with served.http.get(f"{served.url}/api/v1/apps/web/replicas") as r:
        doc = await r.json()
    (replica,) = doc["replicas"]
    assert replica["container"].startswith("t-web-0") and replica["state"] == "running"


async def test_events_carry_ids_pass_and_app_changes_and_resume(served: Served) -> None:
    """A pass that changes an app streams pass_started, the app Progressing, then its new
    status and pass_finished, each with an id; reconnecting with Last-Event-ID replays what
    came after it; an id of another process gets a snapshot."""
    start = served.controller.feed.hub.last_id
    async with served.http.get(f"{served.url}/api/v1/events?last_event_id={start}") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        commit_files(served.repo, {"apps/web.yaml": manifest("web", "busybox:1.37")}, "1.37")
        passes = served.controller.passes
        async with served.http.post(
            f"{served.url}/api/v1/reconcile", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as p:
            assert p.status == 202
        await served.passes_after(passes)
        frames = await read_events(r, 5)
    kinds = [f["event"] for f in frames]
    assert kinds[0] == "pass_started" and "pass_finished" in kinds, kinds
    web = [f["data"] for f in frames if f["event"] == "app" and f["data"]["name"] == "web"]
    assert web[0]["health"] == "Progressing"
    assert web[-1]["health"] == "Healthy" and web[-1]["sync"] == "Synced"
    assert all(f["id"].startswith(served.controller.feed.hub.boot) for f in frames)
    first = frames[0]["id"]
    async with served.http.get(
        f"{served.url}/api/v1/events", headers={"Last-Event-ID": first}
    ) as r:
        replay = await read_events(r, len(frames) - 1)
    assert [f["id"] for f in replay] == [f["id"] for f in frames[1:]]
    async with served.http.get(
        f"{served.url}/api/v1/events", headers={"Last-Event-ID": "deadbeef.3"}
    ) as r:
        (snapshot,) = await read_events(r, 1)
    assert snapshot["event"] == "snapshot"
    assert [a["name"] for a in snapshot["data"]["apps"]] == ["web"]


async def test_a_slow_client_is_dropped_and_publishing_never_waits() -> None:
    """A subscriber that reads nothing is dropped once its queue is full; the others and
    the ring keep every event; an id pushed out of the ring cannot resume."""
    hub = EventHub(ring=8)
    slow, _ = hub.subscribe()
    for n in range(slow.queue.maxsize + 5):
        hub.publish("tick", {"n": n})
    assert slow.dropped and hub.subscribers == 0
    assert hub.since(f"{hub.boot}.1") is None  # pushed out of the ring
    kept = hub.since(hub.last_id.rsplit(".", 1)[0] + f".{slow.queue.maxsize + 1}")
    assert kept is not None and [e.data["n"] for e in kept] == [257, 258, 259, 260]


async def test_events_stream_sends_keepalives(served: Served, monkeypatch: Any) -> None:
    """An idle stream gets a comment line every KEEPALIVE_S."""
    monkeypatch.setattr(streams, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(streams, "POLL_S", 0.1)
    async with served.http.get(f"{served.url}/api/v1/events") as r:
        async with asyncio.timeout(5):
            lines = [await r.content.readline() for _ in range(3)]
    assert b": keepalive\n" in lines


async def test_log_stream_tails_at_most_1000_and_follows_new_lines(served: Served) -> None:
    """``tail`` above 1000 is cut to 1000 (sent whole, not rate-bound); a line printed after
    the stream opened arrives; a flood past 200 lines/s is cut with a marker."""
    (container,) = [c for c in await served.runtime.list() if c.app == "web"]
    for n in range(1200):
        served.runtime.write_log(container.id, f"old {n}")
    async with served.http.get(f"{served.url}/api/v1/apps/web/logs?tail=5000") as r:
        frames = await read_events(r, 2000, timeout=10)
    lines = [f["data"]["line"] for f in frames if f["event"] == "line"]
    assert len(lines) == 1000 and lines[-1] == "web-0 | old 1199"
    assert frames[-1]["event"] == "end"
    async with served.http.get(f"{served.url}/api/v1/apps/web/logs?tail=1&follow=1") as r:
        first = await read_events(r, 2)
        served.runtime.write_log(container.id, "fresh <line>")
        (fresh,) = await read_events(r, 1)
        for n in range(600):
            served.runtime.write_log(container.id, f"flood {n}")
        await asyncio.sleep(1.1)
        served.runtime.write_log(container.id, "later")  # in a later second
        rest = await read_events(
            r, 1000, timeout=5, until=lambda f: f["data"].get("line") == "web-0 | later"
        )
    assert [f["event"] for f in first] == ["reset", "line"]
    assert fresh["data"]["line"] == "web-0 | fresh <line>"
    sent = [f for f in rest if f["event"] == "line"]
    dropped = [f["data"]["lines"] for f in rest if f["event"] == "dropped"]
    assert len(sent) - 1 <= 400  # at most 200 a second; the flood may span two
    assert rest[-2]["event"] == "dropped" and len(sent) - 1 + sum(dropped) == 600
    async with served.http.get(f"{served.url}/api/v1/apps/nope/logs") as r:
        assert r.status == 404


def test_rate_limit_drops_past_the_bound_and_reports_how_many() -> None:
    """After the tail (``burst``), past ``rate`` lines in one second lines are dropped; the
    next second says how many."""
    now = [100.0]
    limit = RateLimit(rate=3, burst=2, clock=lambda: now[0])
    assert [limit.admit() for _ in range(2)] == [(True, 0)] * 2
    assert [limit.admit() for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    now[0] = 101.2
    assert limit.admit() == (True, 2)
    assert limit.admit() == (True, 0)


async def test_with_a_read_token_pages_need_it_as_bearer_or_basic(tmp_path: Path) -> None:
    """Pages and streams refuse an anonymous read with a Basic challenge (pages) or a bearer
    one (API); the read token as Basic password or bearer is let in; static files are open."""
    token_file = tmp_path / "read-token"
    token_file.write_text("reader\n")
    s = await serve(tmp_path, read_token=b"reader")
    try:
        async with s.http.get(f"{s.url}/") as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Basic")
        async with s.http.get(f"{s.url}/api/v1/events") as r:
            assert r.status == 401
        basic = "Basic " + base64.b64encode(b"any:reader").decode()
        wrong = "Basic " + base64.b64encode(b"any:nope").decode()
        async with s.http.get(f"{s.url}/", headers={"Authorization": wrong}) as r:
            assert r.status == 401
        async with s.http.get(f"{s.url}/", headers={"Authorization": basic}) as r:
            assert r.status == 200
        async with s.http.get(f"{s.url}/api/v1/overview", headers={"Authorization": basic}) as r:
            assert r.status == 200
        async with s.http.get(f"{s.url}/", headers={"Authorization": "Bearer reader"}) as r:
            assert r.status == 200
        async with s.http.get(f"{s.url}/static/dashboard.css") as r:
            assert r.status == 200
        async with s.http.post(
            f"{s.url}/api/v1/reconcile",
            headers={"Authorization": "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()},
        ) as r:
            assert r.status == 401  # Basic never authorises a mutation
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()


async def test_closing_the_server_ends_open_streams_at_once(tmp_path: Path) -> None:
    """An open events stream and an open log stream do not hold up the server's close
    (aiohttp would wait for them): both end within a few seconds."""
    s = await serve(tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(s.controller.run(stop))
    try:
        async with asyncio.timeout(10):
            await s.controller.first_pass_done.wait()
        events = await s.http.get(f"{s.url}/api/v1/events")
        logs = await s.http.get(f"{s.url}/api/v1/apps/web/logs?follow=1")
        assert events.status == 200 and logs.status == 200
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            await s.server.close()
        assert asyncio.get_running_loop().time() - started < 3
        events.close()
        logs.close()
    finally:
        stop.set()
        await task
        await s.http.close()
        s.controller.reconciler.source.close()


async def test_the_dashboard_url_is_printed_when_the_server_binds(
    tmp_path: Path, capsys: Any
) -> None:
    """`trueup run` says where its dashboard is: a plain line on stderr and a log event."""
    with structlog.testing.capture_logs() as logs:
        s = await serve(tmp_path)
    try:
        assert f"trueup: dashboard at {s.url}/" in capsys.readouterr().err
        assert {"event": "dashboard_url", "url": f"{s.url}/", "log_level": "info"} in logs
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()
