"""Suspend, resume, manual sync and the per-app plan through the API of an in-process
controller on FakeRuntime (the engine-side behaviour is in tests/integration/test_ops_docker)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from controller.daemon.manual import SyncGate
from controller.daemon.overrides import Overrides
from tests.gitutil import commit_files
from tests.http.conftest import TOKEN, Served, manifest, serve
from tests.http.test_api import metric

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *, sync: str = "auto", token: bool = True
) -> AsyncIterator[Served]:
    s = await serve(tmp_path, token=token)
    s.controller.gate = SyncGate(sync, Overrides.load(tmp_path / "state"))  # type: ignore[arg-type]
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


async def post(s: Served, path: str, *, auth: bool = True, **kwargs: Any) -> tuple[int, Any]:
    async with s.http.post(f"{s.url}{path}", headers=AUTH if auth else {}, **kwargs) as r:
        return r.status, await r.json()


async def get(s: Served, path: str) -> Any:
    async with s.http.get(f"{s.url}{path}") as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def new_commit(s: Served, image: str = "busybox:1.37") -> str:
    """Commit a change of web's image and let the watcher see it."""
    sha = commit_files(s.repo, {"apps/web.yaml": manifest("web", image)}, "web: new image")
    passes = s.controller.passes
    assert s.controller.watcher is not None
    await s.controller.watcher.check()
    await s.passes_after(passes)
    await s.settle()
    return sha


def web_image(s: Served) -> str:
    [container] = s.runtime.containers()
    return container.image


async def test_suspend_and_resume_need_the_token_and_a_known_app(tmp_path: Path) -> None:
    """401 without or with a wrong token, 404 for an unknown app, 200 with the new state;
    without a configured token the actions are 403."""
    async with running(tmp_path) as s:
        assert (await post(s, "/api/v1/apps/web/suspend", auth=False))[0] == 401
        headers = {"Authorization": "Bearer wrong"}
        async with s.http.post(f"{s.url}/api/v1/apps/web/suspend", headers=headers) as r:
            assert r.status == 401
        assert (await post(s, "/api/v1/apps/nope/suspend"))[0] == 404
        assert await post(s, "/api/v1/apps/web/suspend") == (
            200, {"app": "web", "suspended": True},
        )  # fmt: skip
        assert Overrides.load(tmp_path / "state").suspended == {"web"}
        assert await post(s, "/api/v1/apps/web/resume") == (200, {"app": "web", "suspended": False})
        assert Overrides.load(tmp_path / "state").suspended == set()
    async with running(tmp_path / "b", token=False) as s:
        assert (await post(s, "/api/v1/apps/web/suspend"))[0] == 403
        assert (await post(s, "/api/v1/apply", json={"revision": "0" * 40}))[0] == 403


async def test_a_suspended_app_is_left_alone_until_resumed(tmp_path: Path) -> None:
    """Suspended: a commit changing web leaves its container as it runs, status says
    Suspended (OutOfSync) and the plan lists the change; resume applies it at once."""
    async with running(tmp_path) as s:
        [before] = s.runtime.containers()
        await post(s, "/api/v1/apps/web/suspend")
        await new_commit(s)
        [after] = s.runtime.containers()
        assert (after.id, after.image) == (before.id, "busybox:1.36")
        [app] = (await get(s, "/api/v1/status"))["apps"]
        assert (app["health"], app["sync"], app["suspended"]) == ("Suspended", "OutOfSync", True)
        plan = await get(s, "/api/v1/apps/web/plan")  # what resuming would do, held
        assert plan["skipped"].startswith("held: suspended") and plan["in_sync"] is False
        [change] = plan["changes"]
        assert change["diff"] == ['spec.image: "busybox:1.36" → "busybox:1.37"']
        s.runtime.crash(after.id, exit_code=137)  # no heal while suspended either
        await asyncio.sleep(0.5)
        assert [c.state for c in s.runtime.containers()] == ["exited"]
        passes = s.controller.passes
        await post(s, "/api/v1/apps/web/resume")
        await s.passes_after(passes)
        await s.settle()
        assert web_image(s) == "busybox:1.37"
        [app] = (await get(s, "/api/v1/status"))["apps"]
        assert (app["health"], app["sync"], app["suspended"]) == ("Healthy", "Synced", False)


async def test_plan_in_auto_mode_is_a_dry_run_shared_per_pass(tmp_path: Path) -> None:
    """The plan of an in-sync app is empty; page loads within one pass share one dry run
    (one engine list call, no build, nothing changed)."""
    async with running(tmp_path) as s:
        calls = dict(s.runtime.calls)
        plan = await get(s, "/api/v1/apps/web/plan")
        assert plan["in_sync"] is True and plan["changes"] == []
        assert plan["revision"] == s.controller.last_result.revision  # type: ignore[union-attr]
        for _ in range(3):
            await get(s, "/api/v1/apps/web/plan")
        assert s.server.api.ops.plans.dry_runs == 1
        grown = {op: n - calls.get(op, 0) for op, n in s.runtime.calls.items()}
        assert {op: n for op, n in grown.items() if n} == {"list": 1}
        async with s.http.get(f"{s.url}/api/v1/apps/nope/plan") as r:
            assert r.status == 404


async def test_apply_in_auto_mode_is_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as s:
        assert await post(s, "/api/v1/apply", json={"revision": "0" * 40}) == (
            409, {"error": "sync is automatic"},
        )  # fmt: skip
        status = await get(s, "/api/v1/status")
        assert status["sync"] == "auto" and status["pending"] is None
        assert status["approved_revision"] == status["revision"]


async def test_manual_mode_plans_a_commit_and_applies_it_once_approved(tmp_path: Path) -> None:
    """A first start in manual mode applies nothing; the tip is pending with its plan.
    Bad bodies are 400, a wrong revision 409 with the pending one, the right one 202 and
    the app converges; then nothing is pending."""
    async with running(tmp_path, sync="manual") as s:
        assert s.runtime.containers() == []
        status = await get(s, "/api/v1/status")
        pending = status["pending"]
        assert status["sync"] == "manual" and status["approved_revision"] is None
        assert pending["apps"] == ["web"] and pending["subject"] == "initial"
        [app] = status["apps"]
        assert app["sync"] == "OutOfSync"
        plan = await get(s, "/api/v1/apps/web/plan")
        assert plan["revision"] == pending["revision"]
        assert [c["action"] for c in plan["changes"]] == ["create"]
        assert await metric(s, "trueup_pending_apps") == 1
        assert (await post(s, "/api/v1/apply", data=b"{nope"))[0] == 400
        assert (await post(s, "/api/v1/apply", json={"revision": "abc"}))[0] == 400
        assert (await post(s, "/api/v1/apply", data=b"x" * 5000))[0] == 413
        assert (await post(s, "/api/v1/apply", json={}, auth=False))[0] == 401
        code, doc = await post(s, "/api/v1/apply", json={"revision": "1" * 40})
        assert code == 409 and doc["pending"]["revision"] == pending["revision"]
        passes = s.controller.passes
        code, doc = await post(s, "/api/v1/apply", json={"revision": pending["revision"]})
        assert (code, doc) == (202, {"accepted": True, "revision": pending["revision"]})
        await s.passes_after(passes)
        await s.settle()
        assert web_image(s) == "busybox:1.36"
        status = await get(s, "/api/v1/status")
        assert status["pending"] is None and status["approved_revision"] == pending["revision"]
        assert status["apps"][0]["sync"] == "Synced"
        assert Overrides.load(tmp_path / "state").approved == pending["revision"]
        assert await metric(s, "trueup_pending_apps") == 0
        code, _ = await post(s, "/api/v1/apply", json={"revision": pending["revision"]})
        assert code == 400  # nothing pending any more
        passes = s.controller.passes
        docs = commit_files(s.repo, {"README.md": "no manifest changes\n"}, "docs")
        assert s.controller.watcher is not None
        await s.controller.watcher.check()
        await s.passes_after(passes)
        status = await get(s, "/api/v1/status")  # nothing to approve: adopted as it is
        assert status["pending"] is None and status["approved_revision"] == docs


async def test_manual_mode_heals_the_approved_revision_and_refuses_a_stale_one(
    tmp_path: Path,
) -> None:
    """With an approved revision, a new commit is only planned (field diff names the image);
    a crashed replica is healed at the approved revision; approving a revision that a newer
    commit replaced is 409."""
    async with running(tmp_path, sync="manual") as s:
        first = (await get(s, "/api/v1/status"))["pending"]["revision"]
        await post(s, "/api/v1/apply", json={"revision": first})
        await s.settle()
        second = await new_commit(s)
        assert web_image(s) == "busybox:1.36"
        pending = (await get(s, "/api/v1/status"))["pending"]
        assert pending["revision"] == second and pending["apps"] == ["web"]
        plan = await get(s, "/api/v1/apps/web/plan")
        [change] = plan["changes"]
        assert change["action"] == "update"
        assert any(
            line.startswith("spec.image:") and "busybox:1.37" in line for line in change["diff"]
        )
        [container] = s.runtime.containers()
        passes = s.controller.passes
        s.runtime.crash(container.id, exit_code=137)
        await s.passes_after(passes)
        await s.settle()
        [healed] = [c for c in s.runtime.containers() if c.state == "running"]
        assert healed.image == "busybox:1.36"
        third = await new_commit(s, image="busybox:1.36-other")
        code, doc = await post(s, "/api/v1/apply", json={"revision": second})
        assert code == 409 and doc["pending"]["revision"] == third


async def test_an_approved_revision_git_lost_still_lets_the_tip_be_approved(
    tmp_path: Path,
) -> None:
    """The approved revision is not in git (history rewritten): the pass fails naming it,
    the tip is still planned as pending, and approving the tip converges."""
    state = tmp_path / "state"
    lost = Overrides.load(state)
    lost.set_approved("0" * 40)
    s = await serve(tmp_path / "x")
    s.controller.gate = SyncGate("manual", Overrides.load(state))
    stop = asyncio.Event()
    task = asyncio.create_task(s.controller.run(stop))
    try:
        async with asyncio.timeout(10):
            while s.controller.gate.pending is None:
                await asyncio.sleep(0.05)
        assert "not found" in str(s.controller.last_error)
        pending = (await get(s, "/api/v1/status"))["pending"]
        code, _ = await post(s, "/api/v1/apply", json={"revision": pending["revision"]})
        assert code == 202
        async with asyncio.timeout(10):
            while not s.runtime.containers():
                await asyncio.sleep(0.05)
        assert web_image(s) == "busybox:1.36"
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()
