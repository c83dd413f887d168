"""The API, probes and metrics of an in-process controller on FakeRuntime."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from controller.http.probes import ENGINE_CHECK_TTL_S
from controller.runtime.base import BuildRequest
from tests.http.conftest import TOKEN, Served, serve


async def metric(s: Served, name: str, **labels: str) -> float:
    async with s.http.get(f"{s.url}/metrics") as r:
        text = await r.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def reconcile(s: Served, auth: str | None, query: str = "") -> int:
    headers = {"Authorization": auth} if auth is not None else {}
    async with s.http.post(f"{s.url}/api/v1/reconcile{query}", headers=headers) as r:
        return r.status


async def test_reconcile_needs_the_right_bearer_token(served: Served) -> None:
    """Missing or wrong token: 401 and no pass; the right one: 202 and a pass follows."""
    passes = served.controller.passes
    assert await reconcile(served, None) == 401
    assert await reconcile(served, "Bearer wrong") == 401
    assert await reconcile(served, f"Basic {TOKEN}") == 401
    await asyncio.sleep(0.2)
    assert served.controller.passes == passes
    assert await reconcile(served, f"Bearer {TOKEN}") == 202
    await served.passes_after(passes)
    assert await reconcile(served, f"Bearer {TOKEN}", "?app=nope") == 404
    assert await reconcile(served, f"Bearer {TOKEN}", "?app=web") == 202


async def test_reconcile_disabled_without_a_token_file(tmp_path: Path) -> None:
    """No --api-token-file: 403 naming the flag, even with some token."""
    s = await serve(tmp_path, token=False)
    try:
        assert await reconcile(s, "Bearer anything") == 403
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()


async def test_noop_pass_costs_one_list_call(served: Served) -> None:
    """On a converged host a manual pass adds exactly one `list` to the API call counter."""
    before = await metric(served, "trueup_runtime_api_calls_total", op="list")
    others = {op: n for op, n in served.runtime.calls.items() if op != "list"}
    noops = await metric(served, "trueup_reconcile_total", result="noop")
    passes = served.controller.passes
    assert await reconcile(served, f"Bearer {TOKEN}") == 202
    await served.passes_after(passes)
    assert await metric(served, "trueup_reconcile_total", result="noop") == noops + 1
    assert await metric(served, "trueup_runtime_api_calls_total", op="list") == before + 1
    assert {op: n for op, n in served.runtime.calls.items() if op != "list"} == others


async def test_status_and_app_documents(served: Served) -> None:
    """/api/v1/status has the documented apps list; /api/v1/apps/NAME adds history."""
    async with served.http.get(f"{served.url}/api/v1/status") as r:
        doc = await r.json()
    assert doc["instance"] == "t" and doc["first_pass_done"] is True
    [app] = doc["apps"]
    assert set(app) == {"name", "sync", "health", "revision", "replicas", "message", "suspended"}
    assert (app["name"], app["sync"], app["health"]) == ("web", "Synced", "Healthy")
    assert app["replicas"] == {"desired": 1, "ready": 1}
    async with served.http.get(f"{served.url}/api/v1/apps/web") as r:
        one = await r.json()
    assert one["last_error"] is None and one["last_transition"].endswith("Z")
    assert [(a["action"], a["result"]) for a in one["recent_actions"]] == [("create", "ok")]
    async with served.http.get(f"{served.url}/api/v1/apps/nope") as r:
        assert r.status == 404


async def test_metrics_reflect_passes_and_apps(served: Served) -> None:
    """The first pass created web: counted per app, app_info and revision_info present."""
    assert await metric(served, "trueup_reconcile_total", result="changed") == 1
    assert await metric(served, "trueup_app_sync_total", app="web", result="ok") == 1
    info = dict(app="web", sync_status="Synced", health_status="Healthy")
    assert await metric(served, "trueup_app_info", **info) == 1
    sha = served.controller.last_result.revision  # type: ignore[union-attr]
    assert await metric(served, "trueup_revision_info", revision=sha, branch="main") == 1
    assert await metric(served, "trueup_git_fetch_duration_seconds_count") >= 1
    assert await metric(served, "trueup_last_successful_reconcile_timestamp_seconds") > 0


async def test_heal_counts_a_drift_correction(served: Served) -> None:
    """A crashed replica healed by an event-driven pass counts under reason "exited"."""
    [container] = served.runtime.containers()
    passes = served.controller.passes
    served.runtime.crash(container.id, exit_code=137)
    await served.passes_after(passes)
    assert await metric(served, "trueup_drift_corrections_total", app="web", reason="exited") == 1


async def test_probes(tmp_path: Path) -> None:
    """/readyz is 503 until the first pass, 200 after, 503 when the engine stops answering
    (once its cached answer expired); /healthz is 200 throughout."""
    s = await serve(tmp_path)
    stop = asyncio.Event()
    try:
        async with s.http.get(f"{s.url}/readyz") as r:
            assert r.status == 503
            assert (await r.json())["checks"]["first_pass"]["ok"] is False
        task = asyncio.create_task(s.controller.run(stop))
        await asyncio.wait_for(s.controller.first_pass_done.wait(), 10)
        async with s.http.get(f"{s.url}/readyz") as r:
            assert r.status == 200, await r.text()
        s.runtime.unavailable = True
        await asyncio.sleep(ENGINE_CHECK_TTL_S)  # the engine's answer is cached that long
        async with s.http.get(f"{s.url}/readyz") as r:
            assert r.status == 503
            assert (await r.json())["checks"]["engine"]["message"] == "does not answer ping"
        async with s.http.get(f"{s.url}/healthz") as r:
            assert r.status == 200
        stop.set()
        await task
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()


async def test_busy_listen_address_does_not_stop_the_controller(tmp_path: Path) -> None:
    """A port in use is logged and retried in the background; the server comes up once free."""
    import socket

    from controller.http.server import Server

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    s = await serve(tmp_path)
    busy = Server(s.controller, metrics=s.metrics, listen=f"127.0.0.1:{port}", instance="t")
    try:
        await busy.start()
        assert busy.url is None
        blocker.close()
        async with asyncio.timeout(5):
            while busy.url is None:
                await asyncio.sleep(0.05)
        async with s.http.get(f"{busy.url}/healthz") as r:
            assert r.status == 200
    finally:
        blocker.close()
        await busy.close()
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()


async def test_busy_hooks_address_is_retried_like_the_main_one(tmp_path: Path) -> None:
    """A --hooks-listen port in use is logged (hooks_listen_failed) and bound in the
    background once free; the main listener serves meanwhile."""
    import socket

    from structlog.testing import capture_logs

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    with capture_logs() as logs:
        s = await serve(tmp_path, hooks_listen=f"127.0.0.1:{port}")
    try:
        assert s.server.hooks is not None and s.server.hooks.url is None
        assert any(e["event"] == "hooks_listen_failed" for e in logs)
        async with s.http.get(f"{s.url}/healthz") as r:
            assert r.status == 200
        blocker.close()
        async with asyncio.timeout(5):
            while s.server.hooks.url is None:
                await asyncio.sleep(0.05)
        async with s.http.post(f"{s.server.hooks.url}/hooks/generic", data=b"x") as r:
            assert r.status == 401  # the hooks app answers there now
    finally:
        blocker.close()
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()


async def test_app_document_lists_the_images_built_for_it(served: Served) -> None:
    """/api/v1/apps/NAME lists the images trueup built for the app, newest first, the one a
    container runs marked in use; an image built for another app is not in the list."""
    for tag, app in (("trueup/web:a", "web"), ("trueup/web:b", "web"), ("trueup/api:a", "api")):
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            data = f"FROM busybox:1.36\nLABEL tag={tag}\n".encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        labels = {"trueup.image-instance": "t", "trueup.app": app}
        await served.runtime.build(BuildRequest(context.getvalue(), tag=tag, labels=labels))
    async with served.http.get(f"{served.url}/api/v1/apps/web") as r:
        one = await r.json()
    assert [(i["tags"], i["in_use"]) for i in one["images"]] == [
        (["trueup/web:b"], False),
        (["trueup/web:a"], False),
    ]
    assert all(i["size"] > 0 and i["created"] for i in one["images"])
