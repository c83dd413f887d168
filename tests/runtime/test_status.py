"""`trueup status` and `trueup logs` logic, on the fake runtime (fast, deterministic)."""

from __future__ import annotations

import json

from controller import labels as L
from controller.daemon.status import app_logs, collect, render_json, render_text
from controller.runtime import ContainerSpec, HealthCheckSpec
from controller.runtime.fake import FakeRuntime
from controller.targets.containers.target import ContainerTarget

IMAGE = "busybox:1.36"


async def _replica(rt: FakeRuntime, app: str, i: int, replicas: int, **kw: object) -> str:
    labels = {
        L.APP: app,
        L.REPLICA: str(i),
        L.REVISION: "c0ffee" * 6 + "abcd",
        L.SPEC: json.dumps({"replicas": replicas}),
    }
    cid = await rt.create(ContainerSpec(name=f"{app}-{i}", image=IMAGE, labels=labels, **kw))  # type: ignore[arg-type]
    await rt.start(cid)
    return cid


async def test_status_groups_by_app_with_health_and_replicas() -> None:
    """Healthy, degraded and progressing apps are told apart; JSON has the stable shape."""
    rt = FakeRuntime(images=[IMAGE])
    check = HealthCheckSpec(test=("CMD", "true"))
    await _replica(rt, "web", 0, 2)
    await _replica(rt, "web", 1, 2)
    await _replica(rt, "db", 0, 1, healthcheck=check)
    worker = await _replica(rt, "worker", 0, 2)
    await _replica(rt, "worker", 1, 2)
    rt.crash(worker, 1)

    apps = {a.name: a for a in await collect(ContainerTarget(rt))}
    assert (apps["web"].health, apps["web"].ready, apps["web"].desired) == ("Healthy", 2, 2)
    assert apps["db"].health == "Progressing" and apps["db"].ready == 0
    assert (
        apps["worker"].health == "Degraded" and "worker-0 exited (code 1)" in apps["worker"].message
    )
    doc = json.loads(render_json(list(apps.values())))
    assert set(doc["apps"][0]) == {"name", "sync", "health", "revision", "replicas", "message"}
    assert doc["apps"][0]["sync"] == "Unknown"
    assert doc["apps"][0]["replicas"].keys() == {"desired", "ready"}
    assert "worker" in render_text(list(apps.values()))


async def test_logs_prefix_each_line_with_its_replica() -> None:
    """All replicas' lines, each prefixed with app-index; tail limits per replica."""
    rt = FakeRuntime(images=[IMAGE])
    a = await _replica(rt, "web", 0, 2)
    b = await _replica(rt, "web", 1, 2)
    rt.write_log(a, "first")
    rt.write_log(b, "second")
    rt.write_log(a, "third")
    lines = [line async for line in app_logs(ContainerTarget(rt), "web")]
    assert lines == ["web-0 | first", "web-1 | second", "web-0 | third"]
    assert [line async for line in app_logs(ContainerTarget(rt), "web", tail=1)] == [
        "web-1 | second",
        "web-0 | third",
    ]
