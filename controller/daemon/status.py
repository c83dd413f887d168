"""`trueup status` and `trueup logs`: what the runtime alone says about this instance's apps.

Status groups the containers of one list call by their ``trueup.app`` label and reports, per
app, health and replicas in Argo CD's vocabulary. Without a repository there is no desired
state to compare with, so sync is ``Unknown`` and the desired replica count comes from the
``trueup.spec`` label the containers were created with (else the number of containers).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from controller import labels as L
from controller.runtime.base import ContainerInfo, LogLine, Runtime
from controller.runtime.swarm_base import FAILED_ROLLOUT, ROLLING, ServiceLogs, rollout


@dataclass(frozen=True)
class AppStatus:
    """One app's line in `trueup status`."""

    name: str
    sync: str
    health: str
    revision: str | None
    desired: int
    ready: int
    message: str

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape: replicas nested as ``{"desired", "ready"}``."""
        data = asdict(self)
        data["replicas"] = {"desired": data.pop("desired"), "ready": data.pop("ready")}
        return data


def _ready(c: ContainerInfo) -> bool:
    return c.running and c.health in (None, "healthy")


def _desired(containers: Sequence[ContainerInfo]) -> int:
    for c in containers:
        try:
            replicas = json.loads(c.labels.get(L.SPEC, "")).get("replicas")
        except (ValueError, AttributeError):
            continue
        if isinstance(replicas, int) and replicas >= 0:
            return replicas
    return len(containers)


def _problem(c: ContainerInfo) -> str | None:
    if c.state in ("exited", "dead"):
        code = f" (code {c.exit_code})" if c.exit_code is not None else ""
        return f"{c.name} {c.state}{code}"
    if c.running and c.health == "unhealthy":
        return f"{c.name} unhealthy"
    if c.running and c.health == "starting":
        return f"{c.name} starting"
    if not c.running:
        return f"{c.name} {c.state}"
    return None


def app_status(name: str, containers: Sequence[ContainerInfo]) -> AppStatus:
    """Health, replicas and a short message for one app's containers."""
    desired = _desired(containers)
    ready = sum(1 for c in containers if _ready(c))
    problems = [p for c in sorted(containers, key=lambda c: c.name) if (p := _problem(c))]
    if not containers:
        health = "Missing"
    elif ready >= desired and not any(c.health == "unhealthy" for c in containers):
        health = "Healthy"
    elif any(c.state in ("exited", "dead") or c.health == "unhealthy" for c in containers):
        health = "Degraded"
    else:
        health = "Progressing"
    update, update_message = rollout(containers)  # Swarm's own rollout (swarm rows only)
    if update in FAILED_ROLLOUT:
        health = "Degraded"
        problems.insert(0, f"swarm update {update}: {update_message or 'update failed'}")
    elif update in ROLLING and health == "Healthy":
        health = "Progressing"
        problems.insert(0, f"swarm update {update}")
    revisions = Counter(c.labels[L.REVISION] for c in containers if c.labels.get(L.REVISION))
    revision = revisions.most_common(1)[0][0] if revisions else None
    message = f"{ready}/{desired} ready" + (f"; {'; '.join(problems)}" if problems else "")
    return AppStatus(name, "Unknown", health, revision, desired, ready, message)


def summarize(containers: Iterable[ContainerInfo]) -> list[AppStatus]:
    """Per-app status, sorted by app name; containers without an app label are ignored."""
    by_app: dict[str, list[ContainerInfo]] = defaultdict(list)
    for c in containers:
        if c.app:
            by_app[c.app].append(c)
    return [app_status(name, by_app[name]) for name in sorted(by_app)]


async def collect(runtime: Runtime) -> list[AppStatus]:
    """Status of every app of the runtime's instance, from one list call."""
    return summarize(await runtime.list())


def render_json(apps: Sequence[AppStatus]) -> str:
    """``{"apps": [...]}`` as printed by ``--output json``."""
    return json.dumps({"apps": [a.to_json() for a in apps]}, indent=2, sort_keys=True)


def render_text(apps: Sequence[AppStatus]) -> str:
    """An aligned table for people."""
    if not apps:
        return "no apps are running for this instance"
    rows = [("APP", "SYNC", "HEALTH", "READY", "REVISION", "MESSAGE")]
    rows += [
        (a.name, a.sync, a.health, f"{a.ready}/{a.desired}", (a.revision or "-")[:12], a.message)
        for a in apps
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:5])) + "  " + r[5] for r in rows
    )


def replica_name(c: ContainerInfo) -> str:
    """How a replica is named in log prefixes: ``app-<index>`` (else the container name)."""
    return f"{c.app}-{c.replica}" if c.app and c.replica is not None else c.name


async def app_logs(
    runtime: Runtime, app: str, *, follow: bool = False, tail: int | None = None
) -> AsyncIterator[str]:
    """Lines of every replica of ``app``, each prefixed with its replica (on a swarm: the
    service's logs, each line prefixed with its task's slot)."""
    if runtime.kind == "swarm" and isinstance(runtime, ServiceLogs):
        async for line in runtime.service_logs(app, follow=follow, tail=tail):
            yield f"{line.container} | {line.text}"
        return
    replicas = sorted((c for c in await runtime.list() if c.app == app), key=replica_name)
    if not follow:
        lines: list[tuple[str, LogLine]] = []
        for c in replicas:
            lines += [(replica_name(c), line) async for line in runtime.logs(c.id, tail=tail)]
        lines.sort(key=lambda item: (item[1].time is None, item[1].time or 0))
        for prefix, line in lines:
            yield f"{prefix} | {line.text}"
        return
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def pump(c: ContainerInfo) -> None:
        try:
            async for line in runtime.logs(c.id, tail=tail, follow=True):
                await queue.put(f"{replica_name(c)} | {line.text}")
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(c)) for c in replicas]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
