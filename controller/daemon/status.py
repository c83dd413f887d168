"""Status in Argo CD's vocabulary, and `trueup logs`.

`summarize` groups the rows of one observation (`Target.observe`) by their ``trueup.app``
label and reports, per app, health and replicas: what `trueup status` shows from the engine
alone. Without a repository there is no desired state to compare with, so sync is ``Unknown``
and the desired replica count comes from the ``trueup.spec`` label the rows carry (else their
number). `derive_status` adds what a pass knows (desired state, plan, outcomes): sync, and
health corrected by what was asked for; the controller loop keeps it per app. Both are pure.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from controller import labels as L
from controller.desired.resolve import DesiredApp, DesiredState
from controller.planning import Plan, held_apps
from controller.runtime.base import ContainerInfo
from controller.targets.observed import Observation, Rollout
from controller.targets.runner import Outcome
from controller.targets.target import Target


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


def app_status(
    name: str, containers: Sequence[ContainerInfo], rollout: Rollout | None = None
) -> AppStatus:
    """Health, replicas and a short message for one app's rows; ``rollout`` is what the
    engine says of the app's rollout beyond them (see `Rollout`)."""
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
    if rollout is not None and containers:
        if rollout.failed:
            health = "Degraded"
            problems.insert(0, rollout.message)
        elif health == "Healthy":
            health = "Progressing"
            problems.insert(0, rollout.message)
    revisions = Counter(c.labels[L.REVISION] for c in containers if c.labels.get(L.REVISION))
    revision = revisions.most_common(1)[0][0] if revisions else None
    message = f"{ready}/{desired} ready" + (f"; {'; '.join(problems)}" if problems else "")
    return AppStatus(name, "Unknown", health, revision, desired, ready, message)


def _by_app(observation: Observation) -> dict[str, list[ContainerInfo]]:
    by_app: dict[str, list[ContainerInfo]] = defaultdict(list)
    for c in observation.rows:
        if c.app:
            by_app[c.app].append(c)
    return by_app


def summarize(observation: Observation) -> list[AppStatus]:
    """Per-app status, sorted by app name; rows without an app label are ignored."""
    by_app = _by_app(observation)
    return [app_status(n, by_app[n], observation.rollouts.get(n)) for n in sorted(by_app)]


async def collect(target: Target) -> list[AppStatus]:
    """Status of every app of the target's instance, from one observation."""
    return summarize(await target.observe())


def derive_status(
    observation: Observation,
    desired: DesiredState,
    plan: Plan,
    outcomes: Sequence[Outcome] = (),
    *,
    suspended: Collection[str] = (),
) -> list[AppStatus]:
    """Every app's status after a pass, sorted by name: the engine's view (`app_status`) of
    each app desired, observed or failing to load, with sync from the desired state and the
    plan (``OutOfSync`` while a change is pending, held back or failed; ``Unknown`` when the
    manifest is invalid or cannot be resolved) and health corrected by what was asked for
    (``Suspended``, also for the ``suspended`` apps of a runtime override; ``Missing``;
    ``Degraded`` when the new version failed and the old serves).
    """
    by_app = _by_app(observation)
    failed = {o.app: o.message for o in outcomes if not o.ok}
    pending = {c.app for c in plan.changes} | held_apps(plan)
    pending -= {o.app for o in outcomes if o.ok}
    names = set(desired.apps) | set(by_app) | set(desired.errors) | desired.invalid
    out: list[AppStatus] = []
    for name in sorted(names):
        rows = by_app.get(name, [])
        base = app_status(name, rows, observation.rollouts.get(name))
        want = desired.apps.get(name)
        error = failed.get(name) or desired.errors.get(name)
        sync, message = base.sync, base.message
        if name in desired.invalid or name in desired.errors:
            sync, message = "Unknown", error or "manifest invalid"
        elif want is None or name in pending or name in failed:
            sync = "OutOfSync"
            message += "".join(f"; {c.reasons[-1]}" for c in plan.refused if c.app == name)
        else:
            sync = "Synced"
        if error and sync != "Unknown":
            message = f"{message}; last error: {error.splitlines()[0]}"
        out.append(
            replace(
                base,
                sync=sync,
                health=_health(base.health, want, bool(rows), name in failed)
                if name not in suspended
                else "Suspended",
                desired=want.replicas if want else base.desired,
                message=message,
            )
        )
    return out


def _health(observed: str, want: DesiredApp | None, has_rows: bool, failed: bool) -> str:
    """An app's health once what was asked for is known."""
    if want is not None and want.suspend:
        return "Suspended"
    if want is not None and not has_rows and want.replicas > 0:
        return "Missing"
    if failed and observed == "Healthy":
        return "Degraded"  # the old version serves, the new one failed
    return observed


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


async def app_logs(
    target: Target, app: str, *, follow: bool = False, tail: int | None = None
) -> AsyncIterator[str]:
    """Lines of every replica of ``app``, each prefixed with its replica (see `Target.logs`)."""
    async for line in target.logs(app, follow=follow, tail=tail):
        yield line
