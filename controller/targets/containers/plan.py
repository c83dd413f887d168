"""The container plan: how one app's containers differ from its desired state. Pure.

Per replica index: a missing replica is a ``heal`` (it ran before, per the stored spec's
replica count) or a ``scale`` up; a container of an older spec hash is an ``update`` step
(start-first only while the old one serves); a sick container of the desired spec (exited
under a policy that wants it up, never started, unhealthy) is a ``heal``; an interrupted
update is finished by awaiting its new container. Containers above the replica count, or
without a readable index, are removed. The per-app loop, prune guards, field diffs, routes
and ordering are `controller.planning`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.desired.resolve import DesiredApp, DesiredState
from controller.planning import (
    Action,
    Change,
    Plan,
    PlanOptions,
    ReplicaStep,
    diff_specs,
    plan_apps,
)
from controller.routes.table import RouteTable
from controller.targets.observed import Observation, ObservedApp, ObservedState, Replica

_PRIORITY: dict[Action, int] = {
    "delete": 0,
    "create": 1,
    "update": 2,
    "scale": 3,
    "heal": 4,
    "route": 5,
}
"""Which of an app's findings names its change (the headline action)."""


@dataclass(frozen=True, eq=False)
class ContainerObservation(Observation):
    """The container engine's rows (one list call); plans with `make_plan`."""

    def plan(self, desired: DesiredState, options: PlanOptions) -> Plan:
        return container_plan(desired, self.state, options)


def make_plan(
    desired: DesiredState,
    observed: ObservedState,
    *,
    prune: bool = True,
    allow_empty: bool = False,
    current_routes: RouteTable | None = None,
) -> Plan:
    """`container_plan` with its options spelt out."""
    return container_plan(desired, observed, PlanOptions(prune, allow_empty, current_routes))


def container_plan(desired: DesiredState, observed: ObservedState, options: PlanOptions) -> Plan:
    """Compare ``desired`` with the observed containers and return what must change, in
    order (see `controller.planning.plan_apps`)."""
    return plan_apps(
        desired,
        {name: app for name, app in observed.apps.items() if app.replicas},
        diff=diff_app,
        delete=_delete,
        routes_from=observed,
        options=options,
        observed_apps=len(observed.apps),
    )


def _delete(name: str, have: ObservedApp) -> Change:
    ids = tuple(r.id for r in have.replicas)
    return Change(
        app=name,
        action="delete",
        reasons=(f"not in git: removing {len(ids)} container(s), keeping volumes",),
        remove=ids,
    )


@dataclass
class _Findings:
    """What the replicas of one app need, gathered index by index."""

    kinds: set[Action] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)
    steps: list[ReplicaStep] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    scale_up: int = 0

    def note(self, kind: Action, reason: str | None = None) -> None:
        self.kinds.add(kind)
        if reason is not None:
            self.reasons.append(reason)


def diff_app(want: DesiredApp, have: ObservedApp | None) -> Change | None:
    """One app's change (None: its containers run the desired spec as they should)."""
    replicas = have.replicas if have is not None else []
    if not replicas:
        return _create(want)
    found = _Findings()
    by_index = _by_index(replicas, want.replicas, found)
    newest = max(replicas, key=lambda r: (r.info.created, r.name))
    for i in range(want.replicas):
        _plan_index(i, by_index.get(i, []), want, newest, found)
    if not found.kinds:
        return None  # the common case: the stored spec label was never parsed
    return _change(want, replicas, newest.stored_spec() or {}, found)


def _create(want: DesiredApp) -> Change | None:
    if want.replicas == 0:
        return None
    return Change(
        app=want.name,
        action="create",
        reasons=(f"new app: {want.replicas} replica(s)",),
        steps=tuple(ReplicaStep(i, "new replica") for i in range(want.replicas)),
        build=want.build,
        depends_on=want.depends_on,
    )


def _by_index(replicas: list[Replica], count: int, found: _Findings) -> dict[int, list[Replica]]:
    """The replicas of indexes below ``count``; the others are to be removed."""
    by_index: dict[int, list[Replica]] = {}
    for r in replicas:
        if r.index is None:
            found.remove.append(r.id)
            found.note("heal", f"container {r.name} has no replica index")
        elif r.index >= count:
            found.remove.append(r.id)
            found.note("scale")
        else:
            by_index.setdefault(r.index, []).append(r)
    scaled_down = sum(1 for r in replicas if r.index is not None and r.index >= count)
    if scaled_down:
        found.reasons.append(f"scale down: remove {scaled_down} replica(s) above {count}")
    return by_index


def _plan_index(
    i: int, group: list[Replica], want: DesiredApp, newest: Replica, found: _Findings
) -> None:
    """What replica index ``i`` needs, given its containers ``group`` (``newest``: the app's
    newest container, whose stored spec says how many replicas were deployed)."""
    if not group:
        deployed = (newest.stored_spec() or {}).get("replicas")
        if isinstance(deployed, int) and i < deployed:
            found.note("heal", f"replica {i} missing")
            found.steps.append(ReplicaStep(i, "missing"))
        else:
            found.note("scale")
            found.scale_up += 1
            found.steps.append(ReplicaStep(i, "scale up"))
        return
    current = [r for r in group if _is_current(r, want)]
    old = [r for r in group if not _is_current(r, want)]
    if current:
        _keep_current(i, group, current, bool(old), want, found)
        return
    found.note("update")
    if len(old) == 1 and _reloadable(old[0], want):
        found.steps.append(ReplicaStep(i, "files changed", start=False, reload=old[0].id))
        return
    serving = any(r.running for r in old)
    found.steps.append(
        ReplicaStep(
            i,
            "spec changed",
            retire=tuple(r.id for r in old),
            start_first=want.strategy == "start-first" and serving,
        )
    )


def _keep_current(
    i: int,
    group: list[Replica],
    current: list[Replica],
    has_old: bool,
    want: DesiredApp,
    found: _Findings,
) -> None:
    """Index ``i`` has a container of the desired spec: heal it, finish an interrupted
    update, or drop duplicates."""
    best = _best(current)
    extras = tuple(r.id for r in group if r is not best)
    sick = _needs_heal(best, want)
    if sick:
        found.note("heal", f"replica {i} {sick}")
        found.steps.append(ReplicaStep(i, sick, retire=(best.id, *extras), start_first=False))
    elif has_old:
        found.note("update", f"replica {i}: finishing an interrupted update")
        found.steps.append(
            ReplicaStep(i, "finish update", start=False, await_id=best.id, retire=extras)
        )
    elif extras:
        found.note("heal", f"replica {i} has {len(extras)} duplicate container(s)")
        found.remove.extend(extras)


def _change(
    want: DesiredApp, replicas: list[Replica], stored: dict[str, object], found: _Findings
) -> Change:
    """The app's change from its findings: the headline action, reasons, field diffs."""
    reasons = found.reasons
    if found.scale_up:
        reasons.append(f"scale up: add {found.scale_up} replica(s) to reach {want.replicas}")
    kinds = found.kinds
    fields = diff_specs(stored, want.spec) if ("update" in kinds or "scale" in kinds) else []
    if "update" in kinds:
        outdated = sum(1 for r in replicas if not _is_current(r, want))
        reasons.insert(0, f"spec changed: {outdated} replica(s) run an older spec")
    return Change(
        app=want.name,
        action=min(kinds, key=lambda k: _PRIORITY[k]),
        reasons=tuple(dict.fromkeys(reasons)),
        fields=tuple(fields),
        steps=tuple(found.steps),
        remove=tuple(found.remove),
        build=want.build if any(s.start for s in found.steps) else None,
        depends_on=want.depends_on,
    )


def _is_current(replica: Replica, want: DesiredApp) -> bool:
    """The replica runs ``want``'s spec: created from it, or reloaded to it in place (its
    labels keep the spec it was created from; its name carries the short hash it runs now,
    and the rest of its spec is the same)."""
    suffix = replica.name.rsplit("-", 1)[-1]
    if suffix == replica.spec_hash[:8] or not replica.spec_hash:  # never reloaded
        return replica.spec_hash == want.spec_hash
    return suffix == want.short_hash and _same_but_files(replica, want)


def _same_but_files(replica: Replica, want: DesiredApp) -> bool:
    stored = replica.stored_spec()
    if stored is None:
        return False
    unfiled = (
        {k: v for k, v in s.items() if k not in ("files", "replicas")} for s in (stored, want.spec)
    )
    return next(unfiled) == next(unfiled)


def _reloadable(replica: Replica, want: DesiredApp) -> bool:
    """Only ``spec.files`` differ, the app asks for ``reload`` and the replica is running
    (and not unhealthy): its files are updated in place and it is signalled."""
    if not want.spec.get("files") or not replica.running or replica.info.health == "unhealthy":
        return False
    if not _same_but_files(replica, want) or want.manifest.spec.reload is None:
        return False
    stored_paths = {f.get("path") for f in (replica.stored_spec() or {}).get("files", ())}
    return stored_paths <= {f["path"] for f in want.spec["files"]}  # an upload adds, never removes


def _best(candidates: list[Replica]) -> Replica:
    """The replica worth keeping: ready first, then running, then the newest."""
    return max(candidates, key=lambda r: (r.ready, r.running, r.info.created, r.name))


def _needs_heal(replica: Replica, want: DesiredApp) -> str | None:
    """Why ``replica`` must be replaced, or None when it is fine as it is."""
    info = replica.info
    policy = want.restart_policy
    if info.state in ("exited", "dead"):
        code = info.exit_code
        if policy == "never" or (policy == "on-failure" and code == 0):
            return None
        return f"exited (code {code})" if code is not None else f"is {info.state}"
    if info.state == "created":
        return "was created but never started"
    if info.state == "running" and info.health == "unhealthy":
        return "is unhealthy"
    return None
