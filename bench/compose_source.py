"""The compose scenario: one generated compose file of N services, deployed by trueup as a
compose source (the file committed to git, `trueup apply` as a one-shot process) and by
``docker compose up -d --wait`` (the v2 binary, its exit code checked), from nothing and with
one service changed. Both wait until every container runs: trueup always does, Compose with
``--wait``.

trueup reads the same file Compose reads (with ``name:`` set, so the apps are
``<project>-svc-NNN`` on the project's network ``<project>-default``), so the two do exactly
the same work on the engine: N containers on one user-defined network, then one replaced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import engine, generate
from bench.compare import ComposeRunner, _run
from bench.peers import Tool

SCENARIOS = ("create", "change")


def named_compose(project: str, n: int, changed: frozenset[str] = frozenset()) -> str:
    """The generated compose file with its project's ``name:`` (what trueup reads)."""
    return f"name: {project}\n" + generate.compose_file(n, changed)


@dataclass
class TrueupComposeRunner:
    """trueup with the compose file committed under ``stack/compose.yaml``."""

    tool: Tool
    repo: Path
    state_dir: Path
    instance: str
    project: str
    n: int
    api: Any
    can_wait: bool = True

    def set_desired(self, changed: frozenset[str]) -> None:
        text = named_compose(self.project, self.n, changed)
        generate.commit(self.repo, {"stack/compose.yaml": text}, "bench: compose file")

    def up(self, *, wait: bool = False) -> None:
        _run(
            [*self.tool.command, "apply", "--repo", str(self.repo), "--instance", self.instance,
             "--state-dir", str(self.state_dir)]
        )  # fmt: skip

    def owner(self) -> tuple[str, str]:
        return engine.TRUEUP_INSTANCE, self.instance

    def cleanup(self) -> None:
        engine.remove_all(self.api, *self.owner())
        for net in (f"trueup-{self.instance}", f"trueup-{self.instance}-{self.project}-default"):
            engine.remove_network(self.api, net)


def _round(runner: Any, n: int) -> dict[str, float]:
    """Create from nothing, then one service changed; both waited for; cleaned after."""
    label, value = runner.owner()
    first = generate.service_names(n)[0]
    runner.cleanup()
    try:
        runner.set_desired(frozenset())
        started = time.perf_counter()
        runner.up(wait=True)
        times = {"create": time.perf_counter() - started}
        running = engine.running_count(runner.api, label, value)
        if running != n:
            raise RuntimeError(f"{runner.tool.name}: {running} of {n} running after create")
        before = _container(runner, first)
        runner.set_desired(frozenset({first}))
        started = time.perf_counter()
        runner.up(wait=True)
        times["change"] = time.perf_counter() - started
        after = _container(runner, first)
        if after is None or after == before:
            raise RuntimeError(f"{runner.tool.name}: {first} was not replaced by the change")
        if engine.running_count(runner.api, label, value) != n:
            raise RuntimeError(f"{runner.tool.name}: not all {n} running after the change")
        return times
    finally:
        runner.cleanup()


def _container(runner: Any, service: str) -> str | None:
    """The container of ``service`` (trueup's app ``<project>-<service>``)."""
    names = (service, f"{runner.project}-{service}")
    for row in engine.containers(runner.api, *runner.owner()):
        labels = row.get("Labels") or {}
        if {labels.get("trueup.app"), labels.get("com.docker.compose.service")} & set(names):
            return str(row["Id"])
    return None


def run(
    trueup: Tool, compose: Tool, root: Path, n: int, repeat: int, api: Any, tag: str, log: Any
) -> dict[str, Any]:
    """Both tools, ``repeat`` rounds each, alternating which goes first."""
    repo = root / "compose-source-repo"
    repo.mkdir(parents=True, exist_ok=True)
    generate._git(repo, "init", "-q", "-b", "main")
    ours = TrueupComposeRunner(trueup, repo, root / "compose-source-state", f"{tag}-cs",
                               f"{tag}cs", n, api)  # fmt: skip
    theirs = NamedComposeRunner(compose, root / "compose-source-c2", f"{tag}cs2", n, api)
    samples: dict[str, dict[str, list[float]]] = {
        r.tool.name: {s: [] for s in SCENARIOS} for r in (ours, theirs)
    }
    for rep in range(repeat):
        for runner in (ours, theirs) if rep % 2 == 0 else (theirs, ours):
            times = _round(runner, n)
            for scenario, seconds in times.items():
                samples[runner.tool.name][scenario].append(seconds)
            shown = "  ".join(f"{s} {t:.2f}s" for s, t in times.items())
            log(f"  round {rep + 1}/{repeat} {runner.tool.name:11} {shown}")
    return {"samples": samples}


@dataclass
class NamedComposeRunner(ComposeRunner):
    """``docker compose up -d --wait`` on the very file trueup reads (``name:`` included)."""

    def set_desired(self, changed: frozenset[str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = named_compose(self.project, self.n, changed)
        (self.folder / "docker-compose.yml").write_text(text)


def summary(result: dict[str, Any]) -> list[str]:
    """One line per scenario: both medians and trueup's ratio to Compose (target <= 1.0x)."""
    samples = result.get("samples", {})
    ours, theirs = samples.get("trueup", {}), samples.get("compose-v2", {})
    out = []
    for scenario in SCENARIOS:
        a, b = sorted(ours.get(scenario, [])), sorted(theirs.get(scenario, []))
        if not a or not b:
            continue
        ma, mb = a[len(a) // 2], b[len(b) // 2]
        verdict = "met" if ma <= mb else "MISSED"
        out.append(f"compose source, {scenario}: trueup {ma:.2f}s, docker compose up -d --wait "
                   f"{mb:.2f}s, {ma / mb:.2f}x (target <= 1.0x: {verdict})")  # fmt: skip
    return out
