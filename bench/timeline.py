"""Where a whole-process scenario spends its time, seen from the engine: the container events
(create, start, kill, die, destroy) of one tool's run, in seconds from the tool's exec.

``python3 -m bench.timeline [--n 40] [--scenario create|change|...] [--tool trueup|compose]``
generates the bench's services, runs the scenario once with the tool (its containers are
removed before and after), and prints the process's exit and every engine event of its
containers on one time axis, with a summary: exec to first create, first to last start, last
start to exit, and the engine requests the tool made (counted by a unix-socket proxy between
the tool and the engine). Used to find what dominates a figure of ``bench/run``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import engine, generate, peers


def events(api: Any, label: str, value: str, since: float, until: float) -> list[dict[str, Any]]:
    """The engine's container events of ``label=value`` between ``since`` and ``until``."""
    stream = api.events(
        since=since,
        until=until,
        decode=True,
        filters={"type": "container", "label": f"{label}={value}"},
    )
    return [e for e in stream if e.get("Type") == "container"]


def _route(path: str) -> str:
    """``POST /v1.41/containers/abc/start`` -> ``POST /containers/*/start``."""
    method, _, url = path.partition(" ")
    parts = [p for p in url.split("?", 1)[0].split("/") if p]
    if parts and parts[0].startswith("v1."):
        parts = parts[1:]
    if len(parts) >= 3 and parts[0] in ("containers", "images", "networks", "volumes"):
        parts[1] = "*"
    return f"{method} /{'/'.join(parts)}"


def run(args: argparse.Namespace) -> None:
    from tests.runtime.httpcount import CountingProxy  # the suite's own independent counter

    api = engine.client()
    root = Path(tempfile.mkdtemp(prefix="trueup-timeline-"))
    tag = f"tut{os.getpid()}"
    upstream = engine.engine_url().removeprefix("unix://")
    proxy = CountingProxy(upstream, root / "engine.sock")
    env = peers.checkout_env(shlex.split(args.trueup_command), {**os.environ})
    env["DOCKER_HOST"] = proxy.url
    repo, compose = root / "repo", root / "compose"
    first, second = generate.service_names(max(args.n, 2))[:2]
    if args.tool == "trueup":
        label, value = engine.TRUEUP_INSTANCE, tag
        generate.make_repo(repo, args.n)
        command = [
            *shlex.split(args.trueup_command),
            "apply",
            *("--repo", str(repo), "--instance", tag, "--state-dir", str(root / "state")),
            *("--runtime-url", proxy.url),
        ]

        def desire(changed: frozenset[str]) -> None:
            generate.commit(repo, generate.manifests(args.n, changed), "bench: desired")
    else:
        label, value = engine.COMPOSE_PROJECT, tag
        generate.write_compose(compose, args.n)
        command = [
            *shlex.split(args.compose_command),
            *("-p", tag, "-f", str(compose / "docker-compose.yml"), "up", "-d"),
        ]

        def desire(changed: frozenset[str]) -> None:
            generate.write_compose(compose, args.n, changed)

    def up(wait: bool = False) -> tuple[float, float]:
        extra = ["--wait"] if wait and args.tool == "compose" else []
        start = time.time()
        done = subprocess.run([*command, *extra], env=env, capture_output=True, text=True)
        end = time.time()
        if done.returncode != 0:
            raise SystemExit(f"{command[0]} exited {done.returncode}: {done.stderr[-800:]}")
        return start, end

    try:
        engine.remove_all(api, label, value)
        if args.scenario != "create":
            up()
            desire(frozenset({first}))
            if args.scenario == "change_wait":
                up()
                desire(frozenset({first, second}))
        proxy.reset()
        start, end = up(wait=args.scenario == "change_wait")
        requests = list(proxy.requests)
        seen = events(api, label, value, start - 0.5, end + 0.5)
    finally:
        engine.remove_all(api, label, value)
        engine.remove_network(api, f"trueup-{tag}")
        engine.remove_network(api, f"{tag}_default")
        proxy.close()
        shutil.rmtree(root, ignore_errors=True)
    print(report(seen, requests, start, end, verbose=args.verbose))


def report(
    seen: list[dict[str, Any]], requests: list[str], start: float, end: float, *, verbose: bool
) -> str:
    def at(event: dict[str, Any]) -> float:
        return int(event["timeNano"]) / 1e9 - start

    lines = []
    by_action: dict[str, list[float]] = {}
    for event in seen:
        action = str(event.get("Action") or "").split(":")[0]
        by_action.setdefault(action, []).append(at(event))
        if verbose:
            name = (event.get("Actor") or {}).get("Attributes", {}).get("name", "")
            lines.append(f"{at(event):7.3f}  {action:10} {name}")
    lines.append(f"{end - start:7.3f}  exit")
    for action in ("create", "start", "kill", "die", "destroy"):
        times = sorted(by_action.get(action, []))
        if times:
            lines.append(f"{action:8} x{len(times):<3} first {times[0]:.3f}  last {times[-1]:.3f}")
    starts = sorted(by_action.get("start", []))
    creates = sorted(by_action.get("create", []))
    if starts and creates:
        lines.append(
            f"exec->first create {creates[0]:.3f}s, first->last start "
            f"{starts[-1] - starts[0]:.3f}s, last start->exit {end - start - starts[-1]:.3f}s"
        )
    counts = Counter(_route(r) for r in requests)
    lines.append(f"engine requests: {len(requests)}")
    lines += [f"  {n:4} {route}" for route, n in counts.most_common()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python3 -m bench.timeline", description=__doc__.splitlines()[0]
    )
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--scenario", choices=("create", "change", "change_wait"), default="create")
    p.add_argument("--tool", choices=("trueup", "compose"), default="trueup")
    p.add_argument("--trueup-command", default=f"{sys.executable} -m controller")
    p.add_argument("--compose-command", default="docker-compose", help="Compose v2's binary")
    p.add_argument("-v", "--verbose", action="store_true", help="every event")
    run(p.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
