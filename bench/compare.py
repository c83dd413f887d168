"""Whole-process scenarios: trueup apply against ``docker-compose up -d``, same services.

For each repetition and each tool (the order alternates between repetitions), starting from
nothing: *create* (N services from nothing), *no-op* (the same command again, nothing to do),
*change* (one service's environment edited: that service is replaced), *change_wait*
(a second service edited, Compose run with ``up -d --wait`` so that it too waits until the
replaced container runs, as trueup always does; trueup's command is the same as for
*change*) and *change_stop* (the service trueup updates ``stop-first``, `generate.STOP_FIRST`,
edited; Compose's plain ``up -d``, which always stops first). Each is timed
as the whole process, from exec to exit, like a person or a CI job runs it. The tool's
containers and network are removed before and after, so every tool starts from the same
engine state.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench import engine, generate
from bench.peers import Tool

SCENARIOS = ("create", "noop", "change", "change_wait", "change_stop")


class Runner(Protocol):
    """What a scenario needs from a tool."""

    tool: Tool
    api: Any
    can_wait: bool
    """False when the tool has no ``--wait`` (Compose v1): *change_wait* is not measured."""

    def set_desired(self, changed: frozenset[str]) -> None: ...

    def up(self, *, wait: bool = False) -> None: ...

    def cleanup(self) -> None: ...

    def owner(self) -> tuple[str, str]: ...


def _run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(command[:3])}... exited {done.returncode}: {tail}")


@dataclass
class TrueupRunner:
    tool: Tool
    repo: Path
    state_dir: Path
    instance: str
    n: int
    api: Any
    can_wait: bool = True

    def set_desired(self, changed: frozenset[str]) -> None:
        generate.commit(self.repo, generate.manifests(self.n, changed), "bench: desired state")

    def up(self, *, wait: bool = False) -> None:
        """``trueup apply`` (which waits for readiness whatever ``wait`` says)."""
        _run(
            [
                *self.tool.command,
                "apply",
                "--repo",
                str(self.repo),
                "--instance",
                self.instance,
                "--state-dir",
                str(self.state_dir),
            ]
        )

    def owner(self) -> tuple[str, str]:
        return engine.TRUEUP_INSTANCE, self.instance

    def cleanup(self) -> None:
        engine.remove_all(self.api, *self.owner())
        engine.remove_network(self.api, f"trueup-{self.instance}")


@dataclass
class ComposeRunner:
    tool: Tool
    folder: Path
    project: str
    n: int
    api: Any
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    can_wait: bool = True

    def set_desired(self, changed: frozenset[str]) -> None:
        generate.write_compose(self.folder, self.n, changed)

    def up(self, *, wait: bool = False) -> None:
        """``up -d`` (``--wait`` too with ``wait``); a non-zero exit fails the round."""
        _run(
            [
                *self.tool.command,
                "-p",
                self.project,
                "-f",
                str(self.folder / "docker-compose.yml"),
                "up",
                "-d",
                *(["--wait"] if wait else []),
            ],
            cwd=self.folder,
            env=self.env,
        )

    def owner(self) -> tuple[str, str]:
        return engine.COMPOSE_PROJECT, self.project

    def cleanup(self) -> None:
        engine.remove_all(self.api, *self.owner())
        engine.remove_network(self.api, f"{self.project}_default")


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _container_of(runner: Runner, service: str) -> str | None:
    label, value = runner.owner()
    for row in engine.containers(runner.api, label, value):
        labels = row.get("Labels") or {}
        if service in (labels.get("trueup.app"), labels.get("com.docker.compose.service")):
            return str(row["Id"])
    return None


def _check_replaced(runner: Runner, service: str, before: str | None, n: int) -> None:
    """``service`` runs in a new container and all ``n`` services run, or the round fails."""
    after = _container_of(runner, service)
    if after is None or after == before:
        raise RuntimeError(f"{runner.tool.name}: {service} was not replaced by the change")
    label, value = runner.owner()
    running = engine.running_count(runner.api, label, value)
    if running != n:
        raise RuntimeError(f"{runner.tool.name}: {running} of {n} running after change")


def one_round(runner: Runner, n: int) -> dict[str, float]:
    """Create, no-op and change for one tool, from a clean engine; cleans up after itself."""
    label, value = runner.owner()
    api = runner.api
    first, second = generate.service_names(max(n, 2))[:2]
    runner.cleanup()
    try:
        runner.set_desired(frozenset())
        times = {"create": _timed(runner.up)}
        running = engine.running_count(api, label, value)
        if running != n:
            raise RuntimeError(f"{runner.tool.name}: {running} of {n} running after create")
        times["noop"] = _timed(runner.up)
        before = _container_of(runner, first)
        runner.set_desired(frozenset({first}))
        times["change"] = _timed(runner.up)
        _check_replaced(runner, first, before, n)
        changed = {first}
        if runner.can_wait:
            before = _container_of(runner, second)
            changed.add(second)
            runner.set_desired(frozenset(changed))
            times["change_wait"] = _timed(lambda: runner.up(wait=True))
            _check_replaced(runner, second, before, n)
        if n >= 3:
            before = _container_of(runner, generate.STOP_FIRST)
            changed.add(generate.STOP_FIRST)
            runner.set_desired(frozenset(changed))
            times["change_stop"] = _timed(runner.up)
            _check_replaced(runner, generate.STOP_FIRST, before, n)
        return times
    finally:
        runner.cleanup()


def compare(runners: list[Runner], n: int, repeat: int, log: Any = print) -> dict[str, Any]:
    """Every scenario, ``repeat`` times per tool, alternating the tools' order."""
    samples: dict[str, dict[str, list[float]]] = {
        r.tool.name: {s: [] for s in SCENARIOS} for r in runners
    }
    errors: dict[str, str] = {}
    for rep in range(repeat):
        order = runners if rep % 2 == 0 else list(reversed(runners))
        for runner in order:
            name = runner.tool.name
            if name in errors:
                continue
            try:
                times = one_round(runner, n)
            except Exception as exc:
                errors[name] = str(exc)
                log(f"  {name}: FAILED: {exc}")
                continue
            for scenario, seconds in times.items():
                samples[name][scenario].append(seconds)
            shown = "  ".join(f"{s} {t:.2f}s" for s, t in times.items())
            log(f"  round {rep + 1}/{repeat} {name:11} {shown}")
    return {"samples": samples, "errors": errors}
