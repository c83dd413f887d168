"""Plans and outcomes as text for people and JSON for machines (the `trueup diff` contract)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import click

from controller.manifests.problems import Problem
from controller.planning import Change, FieldChange, Plan
from controller.routes.table import RouteTable

_SYMBOL = {"create": "+", "update": "~", "scale": "~", "heal": "~", "delete": "-", "route": "~"}
_COLOUR = {
    "create": "green",
    "update": "yellow",
    "scale": "yellow",
    "heal": "cyan",
    "delete": "red",
    "route": "blue",
}


def _change_json(c: Change) -> dict[str, object]:
    return {
        "app": c.app,
        "action": c.action,
        "reasons": list(c.reasons),
        "fields": [_field_json(f) for f in c.fields],
    }


def _field_json(f: FieldChange) -> dict[str, object]:
    out: dict[str, object] = {"path": f.path, "before": f.before, "after": f.after}
    if f.detail:
        out["diff"] = list(f.detail)
    return out


def plan_json(plan: Plan, problems: Sequence[Problem]) -> dict[str, object]:
    """The documented JSON shape of ``trueup diff --output json``; ``refused`` (deletes held
    back because the pass would delete every app, same shape as a change) only when any."""
    doc: dict[str, object] = {
        "revision": plan.revision,
        "in_sync": plan.in_sync and not problems and not plan.held,
        "changes": [_change_json(c) for c in plan.changes],
        "errors": [
            {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
            for p in problems
        ],
    }
    if plan.refused:
        doc["refused"] = [_change_json(c) for c in plan.refused]
    if plan.held:
        doc["held"] = plan.held
    return doc


def plan_json_text(plan: Plan, problems: Sequence[Problem]) -> str:
    return json.dumps(plan_json(plan, problems), indent=2, sort_keys=False, ensure_ascii=False)


def _value(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str) and value.startswith("(secret"):
        return value
    return json.dumps(value, ensure_ascii=False)


def change_lines(change: Change, *, colour: bool) -> list[str]:
    """One headline and one line per reason and per changed field."""
    symbol = _SYMBOL[change.action]
    head = f"{symbol} {change.app}  {change.action}"
    if change.build is not None:
        head += f"  (build {change.build.tag})"
    lines = [click.style(head, fg=_COLOUR[change.action], bold=True) if colour else head]
    lines.extend(f"    {line}" for line in field_lines(change))
    for reason in change.reasons:
        lines.append(f"    # {reason}")
    return lines


def field_lines(change: Change) -> list[str]:
    """One line per changed field (``path: before → after``, a secret only as ``(secret
    changed)``), each followed by its content diff indented by two spaces: what `trueup
    diff` prints under the change's headline (there indented by four more)."""
    lines: list[str] = []
    for f in change.fields:
        if f.after == "(secret changed)":
            lines.append(f"{f.path}: (secret changed)")
        else:
            lines.append(f"{f.path}: {_value(f.before)} → {_value(f.after)}")
        lines.extend(f"  {line}" for line in f.detail)
    return lines


def plan_text(
    plan: Plan,
    problems: Sequence[Problem],
    *,
    colour: bool = False,
    file_label: Callable[[str], str] = str,
) -> str:
    """A plan as a person reads it before anything happens."""
    out: list[str] = []
    rev = plan.revision[:12] if plan.revision else "working tree"
    out.append(f"revision {rev}")
    for change in plan.changes:
        out.extend(change_lines(change, colour=colour))
    for skip in plan.skipped:
        out.append(f"= {skip.app}  left alone: {skip.reason}")
    for note in plan.notes:
        out.append(f"! {note}")
    for p in problems:
        line = f"{file_label(p.file)}:{p.line}:{p.column}: {p.message}"
        out.append(click.style(line, fg="red") if colour else line)
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in _SYMBOL}
    held = plan.held
    if plan.in_sync and not problems and not held:
        out.append("in sync: nothing to do")
    else:
        summary = ", ".join(f"{n} to {a}" for a, n in counts.items() if n) or "no changes"
        if problems:
            summary += f"; {len(problems)} manifest error(s)"
        if plan.refused:
            summary += (
                f"; deleting {len(plan.refused)} app(s) refused (pass --allow-empty to allow it)"
            )
        if held:
            summary += f"; {len(held)} held by trueup suspend ({', '.join(held)})"
        out.append(f"plan: {summary}")
    return "\n".join(out)


def routes_text(table: RouteTable) -> str:
    """The route table, one line per host + path: its target and the ready upstreams."""
    if not table:
        return "routes: none declared"
    lines = [f"routes ({len(table)}):"]
    for entry in table:
        ready = ", ".join(entry.upstreams) if entry.upstreams else "no ready replica (503)"
        lines.append(f"    {entry.key} → {entry.target}  [{ready}]")
    return "\n".join(lines)
