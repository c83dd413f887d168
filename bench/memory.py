"""The resident controller's memory: RSS of `trueup run` over many passes on N apps.

One controller follows a bench repository of N services with a short ``--interval`` (every
resync is a full pass: git read, desired state, one list call, plan), so 1,000 passes take a
minute or two instead of the ~8 hours they take at the default 30 s. Along the way it also
gets what an hour of a real host brings: commits outside ``--path`` (a new revision, the same
desired state), and every ``change_every`` passes a commit that changes one service (a
replacement, history rows, an engine event). RSS and its high-water mark are read from
``/proc/PID/status`` every ``sample_every`` passes; the result is a table of passes vs RSS.

Standalone: ``python3 -m bench.memory [--n 40] [--passes 1000] [--interval 0.05s]``; ``bench/run``
runs it too (``--memory-passes``, 0 to skip).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import engine, generate, peers
from bench.controller import LogTail

REPO = Path(__file__).resolve().parent.parent


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def _passes(tail: LogTail) -> int:
    tail.poll()
    return sum(1 for e in tail.events if e.get("event") == "reconcile_pass")


def run_memory(
    command: list[str],
    root: Path,
    n: int,
    api: Any,
    instance: str,
    *,
    passes: int = 1000,
    interval: str = "0.05s",
    sample_every: int = 50,
    change_every: int = 250,
    log: Any = print,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start `trueup run`, sample its RSS every ``sample_every`` passes up to ``passes``,
    stop it and clean up; returns the samples."""
    repo = root / "memory-repo"
    generate.make_repo(repo, n)
    logfile = root / "memory.log"
    args = [
        *command,
        "run",
        *("--repo", str(repo), "--path", "apps", "--instance", instance),
        *("--state-dir", str(root / "memory-state"), "--interval", interval),
    ]
    environment = {**(env or os.environ), "TRUEUP_LOG_FORMAT": "json", "TRUEUP_LOG_LEVEL": "info"}
    engine.remove_all(api, engine.TRUEUP_INSTANCE, instance)
    with logfile.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=sink, env=environment)
    tail = LogTail(logfile)
    sample_every = max(1, min(sample_every, passes))
    samples: list[dict[str, float]] = []
    names = generate.service_names(n)
    started = time.perf_counter()
    try:
        engine.wait_for(
            lambda: engine.running_count(api, engine.TRUEUP_INSTANCE, instance) == n,
            timeout=300,
            what=f"{n} running containers",
        )
        next_sample = next_note = 0
        next_change = change_every
        while True:
            done = _passes(tail)
            if process.poll() is not None:
                raise RuntimeError(f"trueup run exited {process.returncode}")
            if done >= next_sample:
                rss, hwm = rss_kib(process.pid)
                samples.append(
                    {
                        "passes": done,
                        "rss_kib": rss,
                        "hwm_kib": hwm,
                        "t_s": time.perf_counter() - started,
                    }
                )
                next_sample += sample_every
                if done >= passes:
                    break
            if done >= next_note:  # a new revision, the same desired state
                generate.commit(repo, {f"notes/{done}.txt": f"{done}\n"}, f"bench: note {done}")
                next_note += sample_every
            if done >= next_change:  # one service replaced
                flip = frozenset({names[0]}) if (done // change_every) % 2 else frozenset()
                generate.commit(repo, generate.manifests(n, flip), f"bench: change at {done}")
                next_change += change_every
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        engine.remove_all(api, engine.TRUEUP_INSTANCE, instance)
        engine.remove_network(api, f"trueup-{instance}")
    out = summary(samples)
    out.update(n=n, interval=interval, samples=samples, duration_s=time.perf_counter() - started)
    log(
        f"  memory: RSS {out['rss_hour_mib']:.1f} MiB after {out['hour_passes']} passes "
        f"(an hour at 30 s), {out['rss_end_mib']:.1f} MiB after {out['end_passes']}; "
        f"growth {out['growth_mib']:+.1f} MiB from pass {out['base_passes']} on"
    )
    return out


def summary(samples: list[dict[str, float]], hour_passes: int = 120) -> dict[str, Any]:
    """RSS after an hour-equivalent (120 passes at the default 30 s interval), at the end,
    and its growth from the first sample after warm-up (100 passes) to the end."""
    if not samples:
        return {}

    def at(passes: int) -> dict[str, float]:
        return next((s for s in samples if s["passes"] >= passes), samples[-1])

    hour, base, end = at(hour_passes), at(100), samples[-1]
    return {
        "hour_passes": int(hour["passes"]),
        "rss_hour_mib": hour["rss_kib"] / 1024,
        "base_passes": int(base["passes"]),
        "end_passes": int(end["passes"]),
        "rss_end_mib": end["rss_kib"] / 1024,
        "hwm_end_mib": end["hwm_kib"] / 1024,
        "growth_mib": (end["rss_kib"] - base["rss_kib"]) / 1024,
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| passes | RSS (MiB) | high-water (MiB) | elapsed (s) |", "|---|---|---|---|"]
    for s in result.get("samples", []):
        lines.append(
            f"| {int(s['passes'])} | {s['rss_kib'] / 1024:.1f} | {s['hwm_kib'] / 1024:.1f} "
            f"| {s['t_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python3 -m bench.memory", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--passes", type=int, default=1000)
    p.add_argument("--interval", default="0.05s")
    p.add_argument("--change-every", type=int, default=250, help="passes between changes")
    p.add_argument("--trueup-command", default=f"{sys.executable} -m controller")
    args = p.parse_args(argv)
    env = peers.checkout_env(shlex.split(args.trueup_command), dict(os.environ))
    root = Path(tempfile.mkdtemp(prefix="trueup-memory-"))
    try:
        result = run_memory(
            shlex.split(args.trueup_command),
            root,
            args.n,
            engine.client(),
            f"tum{os.getpid()}",
            passes=args.passes,
            interval=args.interval,
            change_every=args.change_every,
            env=env,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(table(result))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    (out / f"memory-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
