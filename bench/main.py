"""`bench/run`: trueup against Docker Compose v2 (and v1) on the same engine, in one run.

Installs the tools into throwaway venvs under a temporary folder, generates N equivalent
services (trueup manifests in a temporary git repository, and a compose file), runs the
whole-process scenarios (create, no-op, one-service change; the tools alternate order), the
`trueup run` scenarios, the resident controller's memory over 1,000 passes (`bench.memory`) and
the in-process N=500 pass, prints the table and writes
``bench/results/<timestamp>.json`` (and ``.md``). Everything it creates on the engine carries
its own instance or project name and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    compare,
    compose_source,
    controller,
    engine,
    generate,
    inprocess,
    memory,
    peers,
    report,
)

REPO = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory = f"{int(first.split()[1]) // 1024} MiB"
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40, help="services (default 40)")
    p.add_argument("--repeat", type=int, default=5, help="repetitions per scenario (default 5)")
    p.add_argument("--inproc-n", type=int, default=500, help="apps in the in-process pass")
    p.add_argument("--no-v1", action="store_true", help="skip Docker Compose v1")
    p.add_argument("--no-v2", action="store_true", help="skip Docker Compose v2")
    p.add_argument("--no-controller", action="store_true", help="skip the `trueup run` part")
    p.add_argument("--no-inprocess", action="store_true", help="skip the in-process pass")
    p.add_argument(
        "--memory-passes",
        type=int,
        default=1000,
        help="passes of the `trueup run` memory scenario (default 1000; 0 skips it)",
    )
    p.add_argument(
        "--no-compose-source", action="store_true", help="skip the compose-source scenario"
    )
    p.add_argument(
        "--compose-source-only",
        action="store_true",
        help="run only the compose-source scenario (trueup and Compose v2 on one compose file)",
    )
    p.add_argument(
        "--trueup-command",
        default=None,
        help="run this trueup instead of installing one in a venv: an installed `trueup`, or "
        "'python -m controller' (this checkout is put on PYTHONPATH)",
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    tag = f"tub{os.getpid()}"
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="trueup-bench-"))
    api = engine.client()
    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {"n": args.n, "repeat": args.repeat, "inproc_n": args.inproc_n},
        "machine": {**machine(), **engine.describe(api), "load_avg_start": _load()},
        "notes": [],
    }

    def say(text: str) -> None:
        print(text, flush=True)

    try:
        say(f"installing the tools under {root} ...")
        command = shlex.split(args.trueup_command) if args.trueup_command else None
        tools = peers.install_all(
            root, REPO, v1=not args.no_v1, v2=not args.no_v2, trueup_command=command
        )
        results["tools"] = {name: asdict(tool) for name, tool in tools.items()}
        for tool in tools.values():
            say(f"  {tool.name}: {(tool.skipped and 'SKIPPED: ' + tool.skipped) or tool.version}")
        if not tools["trueup"].available:
            raise SystemExit(f"trueup could not be installed: {tools['trueup'].skipped}")
        env = peers.checkout_env(command or [], dict(os.environ))
        if "PYTHONPATH" in env:  # `python -m controller`: this checkout
            os.environ["PYTHONPATH"] = env["PYTHONPATH"]
        repo = root / "repo"
        generate.make_repo(repo, args.n)
        runners: list[compare.Runner] = [
            compare.TrueupRunner(tools["trueup"], repo, root / "state", f"{tag}-t", args.n, api)
        ]
        for name, suffix in (("compose-v2", "c2"), ("compose-v1", "c1")):
            if tools[name].available:
                runners.append(
                    compare.ComposeRunner(
                        tools[name],
                        root / f"compose-{suffix}",
                        f"{tag}{suffix}",
                        args.n,
                        api,
                        can_wait=name == "compose-v2",  # v1 has no `up --wait`
                    )
                )
        if not args.compose_source_only:
            say(f"whole-process scenarios, N={args.n}, {args.repeat} repetitions ...")
            results["whole_process"] = compare.compare(runners, args.n, args.repeat, log=say)
            python = tools["trueup"].python
            if python:
                say(f"interpreter floor: {python} -c pass ...")
                results["interpreter_floor"] = {
                    "python": python,
                    "samples": peers.interpreter_floor(python, max(10, 4 * args.repeat)),
                }
        if tools["compose-v2"].available and not args.no_compose_source:
            say(f"compose source: one compose file, trueup and compose v2, N={args.n} ...")
            try:
                results["compose_source"] = compose_source.run(
                    tools["trueup"], tools["compose-v2"], root, args.n, args.repeat, api, tag, say
                )
            except Exception as exc:
                results["compose_source"] = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"  FAILED: {exc}")
        if args.compose_source_only:
            pass
        elif not args.no_controller:
            say("`trueup run` scenarios ...")
            try:
                ctl = controller.run_controller(
                    tools["trueup"], root, args.n, args.repeat, api, f"{tag}-r", log=say
                )
                ctl["container_start_s"] = engine.container_start_floor(
                    api, label=engine.TRUEUP_INSTANCE, value=f"{tag}-f", repeat=args.repeat
                )
                results["controller"] = ctl
            except Exception as exc:
                results["controller"] = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"  FAILED: {exc}")
        if args.memory_passes > 0 and not args.compose_source_only:
            say(f"`trueup run` memory over {args.memory_passes} passes, N={args.n} ...")
            try:
                results["memory"] = memory.run_memory(
                    tools["trueup"].command,
                    root,
                    args.n,
                    api,
                    f"{tag}-m",
                    passes=args.memory_passes,
                    log=say,
                    env=env,
                )
            except Exception as exc:
                results["memory"] = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"  FAILED: {exc}")
        if not args.no_inprocess and not args.compose_source_only:
            say(f"in-process no-op pass, N={args.inproc_n} (FakeRuntime) ...")
            try:
                results["inprocess"] = inprocess.run(args.inproc_n)
            except Exception as exc:
                results["inprocess"] = {"error": f"{type(exc).__name__}: {exc}"}
                say(f"  FAILED: {exc}")
    finally:
        for label, value in (
            (engine.TRUEUP_INSTANCE, f"{tag}-t"),
            (engine.TRUEUP_INSTANCE, f"{tag}-r"),
            (engine.TRUEUP_INSTANCE, f"{tag}-f"),
            (engine.TRUEUP_INSTANCE, f"{tag}-m"),
            (engine.TRUEUP_INSTANCE, f"{tag}-cs"),
            (engine.COMPOSE_PROJECT, f"{tag}cs2"),
            (engine.COMPOSE_PROJECT, f"{tag}c2"),
            (engine.COMPOSE_PROJECT, f"{tag}c1"),
        ):
            engine.remove_all(api, label, value)
        networks = [f"trueup-{tag}-t", f"trueup-{tag}-r", f"trueup-{tag}-m"]
        networks += [f"{tag}c2_default", f"{tag}c1_default"]
        networks += [f"trueup-{tag}-cs", f"trueup-{tag}-cs-{tag}cs-default", f"{tag}cs2_default"]
        for net in networks:
            engine.remove_network(api, net)
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["machine"]["load_avg_end"] = _load()
    if engine.LEFTOVERS:
        results["notes"].append(
            "the engine refused to remove network(s) "
            f"{', '.join(sorted(set(engine.LEFTOVERS)))} (stale endpoints); they were reused"
        )
    results["duration_s"] = time.perf_counter() - started
    results.setdefault("whole_process", {"samples": {}, "errors": {}})
    table = report.rows(results)
    results["summary"] = [row.as_dict() for row in table]
    say("")
    say(report.table_text(table))
    compose_lines = compose_source.summary(results.get("compose_source", {}))
    for line in compose_lines:
        say(line)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / results["timestamp"].replace(":", "")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    extra = "".join(f"\n{line}\n" for line in compose_lines)
    stem.with_suffix(".md").write_text(report.markdown(results) + extra)
    say(f"\nwritten: {stem.with_suffix('.json')} (and .md), {results['duration_s']:.0f} s in all")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
