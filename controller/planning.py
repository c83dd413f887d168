"""The plan, whatever the engine: desired apps against what a target observed, as ordered,
explained changes.

For every app in desired ∪ observed, at most one ``Change`` whose ``action`` is the headline
(create, update, scale, heal, delete) and whose ``reasons`` list everything found. Each change
carries what apply must do (``ReplicaStep``s per replica index on a container engine, the
engine objects to remove outright), so apply never re-derives decisions. Apps left alone
(suspended, invalid manifest, prune suspended) are listed in ``skipped`` with the reason. A
pass that would delete every app is refused (unless allowed): its deletes are kept aside in
``refused`` and the plan is not in sync, so diff, apply and status say so.

Engine-neutral: `plan_apps` is the per-app loop every target plans with; a target supplies only
how one app's observed units differ from its desired state (``targets/*/plan.py``). Also here:
the field-level diff of two resolved specs (secrets masked), route differences, the ordering
and `restrict` (the loop's narrowing of a plan).

Deterministic: the same inputs always give the same plan (sorted, topologically ordered by
``dependsOn``, deletes last). No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from controller.desired.envfiles import diff_env_from
from controller.desired.files import diff_files
from controller.desired.resolve import BuildPlan, DesiredApp, DesiredState, stored_secret
from controller.routes.table import RouteTable, build_table, kept_apps
from controller.targets.observed import ObservedState

Action = Literal["create", "update", "scale", "heal", "delete", "route"]

REFUSED_EMPTY = (
    "deletion refused: the pass would delete every managed app; "
    "pass --allow-empty (trueup run: allow_empty: true) if that is intended"
)
"""Why an app git no longer declares still runs after a refused pass (plan, diff, status)."""

SECRET = "(secret)"
SECRET_CHANGED = "(secret changed)"


@dataclass(frozen=True)
class FieldChange:
    """One field of the resolved spec that differs: ``path`` as in the manifest."""

    path: str
    before: Any
    after: Any
    detail: tuple[str, ...] = ()
    """More to show under the field: the unified diff of a changed file (`file_diffs`)."""


@dataclass(frozen=True)
class ReplicaStep:
    """What happens to one replica index.

    ``start``: create and start a new container for the index. ``await_id``: an existing
    container of the desired spec that must become healthy before ``retire`` is removed (an
    update interrupted half-way). ``retire``: containers of the index removed once the new one
    is healthy (start-first) or before it starts (stop-first).
    """

    index: int
    reason: str
    start: bool = True
    await_id: str | None = None
    retire: tuple[str, ...] = ()
    start_first: bool = True
    reload: str | None = None
    """A running container of the index whose ``spec.files`` alone are outdated: its files are
    uploaded in place and it is sent the app's ``reload`` signal, instead of being replaced."""


@dataclass(frozen=True)
class Change:
    """Everything that must happen to one app."""

    app: str
    action: Action
    reasons: tuple[str, ...]
    fields: tuple[FieldChange, ...] = ()
    steps: tuple[ReplicaStep, ...] = ()
    remove: tuple[str, ...] = ()
    build: BuildPlan | None = None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    """An app the plan leaves alone on purpose, and why."""

    app: str
    reason: str
    hold_routes: bool = False
    """Suspended (``suspend: true`` or `trueup suspend`): its routes stay as the proxy serves
    them too (upstreams refreshed), whatever the newer manifest says, until it is resumed."""
    waiting: bool = False
    """A change git asks for waits behind it (`trueup suspend`): the host does not match git,
    so a one-shot `diff`/`apply` does not say "in sync" (exit 1)."""


@dataclass(frozen=True)
class Plan:
    """The ordered changes of one pass."""

    revision: str | None
    changes: tuple[Change, ...] = ()
    skipped: tuple[Skip, ...] = ()
    notes: tuple[str, ...] = field(default=())
    routes: RouteTable = ()
    """The route table the ready replicas give now (shown even when no router pushes it)."""
    refused: tuple[Change, ...] = ()
    """Deletes held back because the pass would delete every app (no ``allow_empty``): the
    apps keep running although git no longer declares them, so the plan is not in sync."""

    @property
    def in_sync(self) -> bool:
        return not self.changes and not self.refused

    @property
    def held(self) -> list[str]:
        """The apps whose change waits behind a `trueup suspend` (``Skip.waiting``)."""
        return [s.app for s in self.skipped if s.waiting]


@dataclass(frozen=True)
class PlanOptions:
    """How a pass plans: prune apps gone from git (unless a guard holds), allow deleting
    every app, and the route table the proxy serves now (None: routes are computed into
    ``Plan.routes`` but not compared)."""

    prune: bool = True
    allow_empty: bool = False
    current_routes: RouteTable | None = None


H = TypeVar("H")
"""What a target observed of one app (its containers, its services)."""


def plan_apps(
    desired: DesiredState,
    observed: Mapping[str, H],
    *,
    diff: Callable[[DesiredApp, H | None], Change | None],
    delete: Callable[[str, H], Change],
    routes_from: ObservedState,
    options: PlanOptions,
    observed_apps: int | None = None,
) -> Plan:
    """The per-app loop every target plans with: for each app in desired ∪ observed, skip it
    (suspended, unresolvable, not prunable), delete it (``delete``: gone from git) or ask
    ``diff`` what must change; then `finish_plan`.

    ``observed`` holds only apps the engine has something of; ``observed_apps`` counts the
    apps for the empty-delete refusal (default: ``len(observed)``). With
    ``options.current_routes``, route differences join the plan (see `finish_plan`).
    """
    changes: list[Change] = []
    deletes: list[Change] = []
    skipped: list[Skip] = []
    for name in sorted(set(desired.apps) | set(observed) | set(desired.errors)):
        want = desired.apps.get(name)
        have = observed.get(name)
        if want is None:
            if have is None:
                if name in desired.errors:
                    skipped.append(Skip(name, desired.errors[name]))
                continue
            reason = why_not_prune(name, desired, options.prune)
            if reason:
                skipped.append(Skip(name, reason))
            else:
                deletes.append(delete(name, have))
            continue
        if want.suspend:
            skipped.append(Skip(name, "suspended: reconcile leaves this app alone", True))
            continue
        change = diff(want, have)
        if change is not None:
            changes.append(change)
    return finish_plan(
        desired,
        changes,
        deletes,
        skipped,
        observed_apps=len(observed) if observed_apps is None else observed_apps,
        allow_empty=options.allow_empty,
        routes_from=routes_from,
        current_routes=options.current_routes,
    )


def finish_plan(
    desired: DesiredState,
    changes: list[Change],
    deletes: list[Change],
    skipped: list[Skip],
    *,
    observed_apps: int,
    allow_empty: bool,
    routes_from: ObservedState,
    current_routes: RouteTable | None,
) -> Plan:
    """The steps every planner ends with: refuse a pass that deletes every app, add route
    changes, order (dependencies first, deletes last) and assemble the plan."""
    notes: list[str] = []
    refused: tuple[Change, ...] = ()
    if deletes and not allow_empty and len(deletes) == observed_apps and not desired.apps:
        notes.append(
            f"refusing to delete every managed app ({len(deletes)}); "
            "pass --allow-empty (trueup run: allow_empty: true) if that is really intended"
        )
        skipped = skipped + [Skip(d.app, REFUSED_EMPTY) for d in deletes]
        refused = tuple(
            replace(d, reasons=(*d.reasons, REFUSED_EMPTY))
            for d in sorted(deletes, key=lambda c: c.app)
        )
        deletes = []
    keep = kept_apps(desired, skipped)
    table = build_table(desired, routes_from, current=current_routes or (), keep=keep)
    if current_routes is not None:
        changes, deletes = _with_routes(changes, deletes, route_fields(current_routes, table))
    ordered = _topological(changes) + sorted(deletes, key=lambda c: c.app, reverse=True)
    return Plan(
        desired.revision,
        tuple(ordered),
        tuple(sorted(skipped, key=lambda s: s.app)),
        tuple(notes),
        routes=table,
        refused=refused,
    )


def route_fields(current: RouteTable, wanted: RouteTable) -> dict[str, list[FieldChange]]:
    """Route differences by app: ``spec.routes[host/path]`` added, removed or re-pointed
    (``app:port``), or ``spec.routes[host/path].upstreams`` when only the ready replicas
    differ from what the proxy has."""
    before = {e.key: e for e in current}
    after = {e.key: e for e in wanted}
    out: dict[str, list[FieldChange]] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        path = f"spec.routes[{key}]"
        if old is None and new is not None:
            out.setdefault(new.app, []).append(FieldChange(path, None, new.target))
        elif new is None and old is not None:
            out.setdefault(old.app, []).append(FieldChange(path, old.target, None))
        elif old is not None and new is not None:
            if old.target != new.target:
                change = FieldChange(path, old.target, new.target)
                for app in dict.fromkeys((new.app, old.app)):
                    out.setdefault(app, []).append(change)
            elif old.upstreams != new.upstreams:
                out.setdefault(new.app, []).append(
                    FieldChange(f"{path}.upstreams", list(old.upstreams), list(new.upstreams))
                )
    return out


def _route_reason(fields: list[FieldChange]) -> str:
    added = sum(1 for f in fields if f.before is None)
    removed = sum(1 for f in fields if f.after is None)
    other = len(fields) - added - removed
    parts = [
        f"{n} to {word}"
        for n, word in ((added, "add"), (removed, "remove"), (other, "update"))
        if n
    ]
    return "routes: " + ", ".join(parts) + " in the proxy"


def _with_routes(
    changes: list[Change], deletes: list[Change], by_app: dict[str, list[FieldChange]]
) -> tuple[list[Change], list[Change]]:
    """Fold route differences into the apps' changes; a route-only app gets ``route``."""
    out_changes, out_deletes = list(changes), list(deletes)
    for group in (out_changes, out_deletes):
        for i, change in enumerate(group):
            fields = by_app.pop(change.app, None)
            if fields:
                group[i] = replace(
                    change,
                    reasons=(*change.reasons, _route_reason(fields)),
                    fields=tuple(sorted((*change.fields, *fields), key=lambda f: f.path)),
                )
    for app, fields in sorted(by_app.items()):
        out_changes.append(Change(app, "route", (_route_reason(fields),), fields=tuple(fields)))
    return out_changes, out_deletes


def why_not_prune(name: str, desired: DesiredState, prune: bool) -> str | None:
    if name in desired.invalid:
        return "manifest invalid: left running as it is"
    if name in desired.errors:
        return f"cannot resolve ({desired.errors[name]}): left running as it is"
    if desired.load_failed:
        return "not in git, but pruning is suspended: a manifest failed to load"
    if not prune:
        return "not in git; pruning is off"
    return None


def diff_specs(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Field-level differences between two resolved specs, secrets masked, sorted by path."""
    out = [FieldChange(*row) for row in diff_files(before.get("files"), after.get("files"))]
    out += [FieldChange(*r) for r in diff_env_from(before.get("envFrom"), after.get("envFrom"))]
    rest = [{k: v for k, v in s.items() if k not in ("files", "envFrom")} for s in (before, after)]
    _diff("", rest[0], rest[1], out)
    return sorted(out, key=lambda f: f.path)


def _path_name(prefix: str, key: str) -> str:
    if not prefix:
        return "metadata.labels" if key == "labels" else f"spec.{key}"
    return f"{prefix}.{key}"


def _diff(prefix: str, before: Any, after: Any, out: list[FieldChange]) -> None:
    if _is_secret(before) or _is_secret(after):
        if before != after:
            shown_before = SECRET if _is_secret(before) else _masked(before)
            shown_after = _masked(after)
            if _is_secret(after):  # a secret that is new or other than it was: "changed"
                plain_before = before is not None and not _is_secret(before)
                shown_after = SECRET if plain_before else SECRET_CHANGED
            out.append(FieldChange(prefix, shown_before, shown_after))
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            _diff(_path_name(prefix, str(key)), before.get(key), after.get(key), out)
        return
    if (before is None and _holds_secret(after)) or (after is None and _holds_secret(before)):
        _diff(prefix, before or {}, after or {}, out)  # a stored spec without `env`, say
        return
    if before != after:
        out.append(FieldChange(prefix, _masked(before), _masked(after)))


def _holds_secret(value: Any) -> bool:
    return isinstance(value, dict) and any(_is_secret(v) for v in value.values())


def _masked(value: Any) -> Any:
    """``value`` with every secret in it shown as ``(secret)``: no digest is ever printed."""
    if _is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _is_secret(value: Any) -> bool:
    return stored_secret(value) is not None


def _topological(changes: Iterable[Change]) -> list[Change]:
    """Order changes so dependencies come first; ties (and cycles, which validation forbids)
    by name."""
    by_app = {c.app: c for c in changes}
    done: set[str] = set()
    ordered: list[Change] = []

    def visit(app: str, trail: frozenset[str]) -> None:
        if app in done or app in trail or app not in by_app:
            return
        for dep in sorted(by_app[app].depends_on):
            visit(dep, trail | {app})
        done.add(app)
        ordered.append(by_app[app])

    for app in sorted(by_app):
        visit(app, frozenset())
    return ordered


HELD_BACKOFF = "held: backing off after a failure"
HELD_SCOPE = "held: this pass acts on other apps only"


def restrict(
    plan: Plan, *, only: set[str] | None = None, exclude: frozenset[str] | set[str] = frozenset()
) -> Plan:
    """The plan narrowed to ``only`` (None: every app) minus ``exclude``. Changes left out are
    listed as skipped with a ``held:`` reason: they are still pending (the app is out of sync)."""
    kept: list[Change] = []
    held: list[Skip] = []
    for change in plan.changes:
        if change.app in exclude:
            held.append(Skip(change.app, HELD_BACKOFF))
        elif only is not None and change.app not in only:
            held.append(Skip(change.app, HELD_SCOPE))
        else:
            kept.append(change)
    return replace(plan, changes=tuple(kept), skipped=plan.skipped + tuple(held))


def held_apps(plan: Plan) -> set[str]:
    """Apps with a change this plan holds back (see ``restrict``)."""
    return {s.app for s in plan.skipped if s.reason.startswith("held:")}
