"""Medians, spreads, ratios and targets: the table printed, and the JSON and Markdown written."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: list[float]) -> tuple[float, float]:
    return (min(values), max(values)) if values else (math.nan, math.nan)


def stats(values: list[float]) -> dict[str, Any]:
    lo, hi = spread(values)
    return {"median": median(values), "min": lo, "max": hi, "n": len(values), "samples": values}


@dataclass
class Row:
    """One line of the table: a scenario, each tool's figure, the ratio and the target."""

    scenario: str
    trueup: str
    v2: str
    v1: str
    ratio: str
    target: str
    met: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "trueup": self.trueup,
            "compose_v2": self.v2,
            "compose_v1": self.v1,
            "trueup_vs_v2": self.ratio,
            "target": self.target,
            "met": self.met,
        }


def _seconds(values: list[float], unit: str = "s") -> str:
    if not values:
        return "n/a"
    m = median(values)
    lo, hi = spread(values)
    if unit == "ms":
        return f"{m * 1000:.1f} ms ({lo * 1000:.1f}–{hi * 1000:.1f})"
    return f"{m:.2f} s ({lo:.2f}–{hi:.2f})"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and not math.isnan(a) and not math.isnan(b) else "n/a"


def rows(results: dict[str, Any]) -> list[Row]:
    """The summary table from a results document (see ``bench.main``)."""
    whole = results.get("whole_process") or {}
    samples: dict[str, dict[str, list[float]]] = whole.get("samples") or {}
    tools = results.get("tools") or {}

    def figure(tool: str, scenario: str) -> str:
        info = tools.get(tool) or {}
        if info.get("skipped"):
            return "skipped"
        if tool in (whole.get("errors") or {}):
            return "failed"
        return _seconds((samples.get(tool) or {}).get(scenario, []))

    def med(tool: str, scenario: str) -> float:
        return median((samples.get(tool) or {}).get(scenario, []))

    out: list[Row] = []
    targets = {
        "create": ("create from nothing", "create", 1.0, "≤ 1.0× v2 `up -d`"),
        "noop": ("no-op `apply` / `up -d` (whole process)", "noop", 1.5, "≤ 1.5× v2"),
        "change": ("one-service change", "change", 1.0, "≤ 1.0× v2 (stop-first)"),
        "change_wait": (
            "one-service change vs `up -d --wait`",
            "change_wait",
            1.0,
            "≤ 1.0× v2 `--wait` (start-first)",
        ),
        "change_stop": (
            "stop-first one-service change vs `up -d`",
            "change_stop",
            1.0,
            "≤ 1.0× v2 `up -d`",
        ),
    }
    for scenario, (label, peer, limit, target) in targets.items():
        t, v2 = med("trueup", scenario), med("compose-v2", peer)
        met = None if math.isnan(t) or math.isnan(v2) else t <= limit * v2
        out.append(
            Row(
                f"{label}, N={results['config']['n']}",
                figure("trueup", scenario),
                figure("compose-v2", peer),
                figure("compose-v1", peer),
                _ratio(t, v2),
                target,
                met,
            )
        )
        if scenario == "noop":
            out.extend(_floor_row(results, v2))
    ctl = results.get("controller") or {}
    if ctl and not ctl.get("error"):
        noop = ctl.get("noop_pass_s") or []
        v2noop = med("compose-v2", "noop")
        out.append(
            Row(
                "no-op pass inside `trueup run`",
                _seconds(noop, "ms"),
                _seconds((samples.get("compose-v2") or {}).get("noop", []), "ms"),
                "",
                _ratio(median(noop), v2noop),
                "≤ 0.1× v2 no-op",
                None if math.isnan(v2noop) or not noop else median(noop) <= 0.1 * v2noop,
            )
        )
        floor = median(ctl.get("container_start_s") or [])
        c2c = ctl.get("commit_to_converged_s") or []
        out.append(
            Row(
                "commit → converged (`trueup run`)",
                _seconds(c2c),
                "",
                "",
                "",
                f"≤ 2 s + container start ({floor:.2f} s)",
                None if not c2c else median(c2c) <= 2.0 + (0 if math.isnan(floor) else floor),
            )
        )
        r2r = ctl.get("removed_to_replaced_s") or []
        out.append(
            Row(
                "removed container → replaced (`trueup run`)",
                _seconds(r2r),
                "",
                "",
                "",
                "≤ 2 s",
                None if not r2r else median(r2r) <= 2.0,
            )
        )
        own = ctl.get("api_calls_trueup") or []
        proxy = ctl.get("api_calls_proxy") or []
        shown = f"{median(own):g} (trueup)" if own else "n/a (trueup)"
        shown += f", {median(proxy):g} (proxy)" if proxy else ""
        out.append(
            Row(
                "engine API calls per no-op pass",
                shown,
                "",
                "",
                "",
                "1 (one list call)",
                None if not (own or proxy) else max(own + proxy) == 1,
            )
        )
    elif ctl.get("error"):
        out.append(Row("`trueup run` scenarios", "failed", "", "", "", "", False))
    mem = results.get("memory") or {}
    if mem.get("samples"):
        out.append(
            Row(
                f"`trueup run` RSS after {mem['hour_passes']} passes (≥ 1 h at 30 s), N={mem['n']}",
                f"{mem['rss_hour_mib']:.1f} MiB",
                "",
                "",
                "",
                "< 100 MB",
                mem["rss_hour_mib"] * 1024 * 1024 < 100e6,
            )
        )
        out.append(
            Row(
                f"`trueup run` RSS growth, pass {mem['base_passes']} → {mem['end_passes']}",
                f"{mem['growth_mib']:+.1f} MiB (to {mem['rss_end_mib']:.1f} MiB)",
                "",
                "",
                "",
                "no growth (< 2 MiB, allocator noise)",
                mem["growth_mib"] < 2.0,
            )
        )
    elif mem.get("error"):
        out.append(Row("`trueup run` memory", "failed", "", "", "", "", False))
    inproc = results.get("inprocess") or {}
    if inproc and not inproc.get("error"):
        values = inproc.get("noop_pass_s") or []
        out.append(
            Row(
                f"in-process no-op pass, N={inproc.get('n')} (FakeRuntime)",
                _seconds(values, "ms"),
                "",
                "",
                "",
                "< 100 ms",
                median(values) < 0.1 if values else None,
            )
        )
    return out


def _floor_row(results: dict[str, Any], v2_noop: float) -> list[Row]:
    """The interpreter's own start-up (``<venv>/bin/python -c pass``), beside the no-op row: the
    part of trueup's whole-process figure that no change to trueup can remove."""
    floor = (results.get("interpreter_floor") or {}).get("samples") or []
    if not floor:
        return []
    return [
        Row(
            "  of which the interpreter: `python -c pass`",
            _seconds(floor),
            "",
            "",
            _ratio(median(floor), v2_noop),
            "(the floor of the row above)",
            None,
        )
    ]


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "NO")


HEADER = ("scenario", "trueup", "compose v2", "compose v1", "trueup/v2", "target", "met")


def table_text(table: list[Row]) -> str:
    cells = [HEADER] + [
        (r.scenario, r.trueup, r.v2, r.v1, r.ratio, r.target, _mark(r.met)) for r in table
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table_markdown(table: list[Row]) -> str:
    cells = [(r.scenario, r.trueup, r.v2, r.v1, r.ratio, r.target, _mark(r.met)) for r in table]
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(c or "" for c in row) + " |" for row in cells]
    return "\n".join(out)


def markdown(results: dict[str, Any]) -> str:
    """A results document as Markdown: the table, the machine, the tools, the caveats."""
    m = results.get("machine") or {}
    tools = results.get("tools") or {}
    lines = [
        f"# Benchmark results ({results.get('timestamp', '')})",
        "",
        f"`bench/run --n {results['config']['n']} --repeat {results['config']['repeat']}`: "
        "medians, with the range (min–max) over the repetitions in parentheses.",
        "",
        table_markdown(rows(results)),
        "",
        "## Machine",
        "",
    ]
    for key, value in m.items():
        lines.append(f"- {key}: {value}")
    lines += ["", "## Tools", ""]
    for name, info in tools.items():
        state = f"skipped: {info['skipped']}" if info.get("skipped") else info.get("version", "")
        lines.append(f"- {name}: {state}")
    notes = results.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
