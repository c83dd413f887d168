"""The dashboard's streams under load: does holding SSE clients slow `trueup run`'s loop?

One `trueup run` follows a bench repository of N services (``bench.generate``) plus one
``chatty`` app that prints about 50 lines a second. Three phases of ``--seconds`` each, on the
same controller: a baseline with no client, then with ``--clients`` clients holding
``GET /api/v1/events`` and ``--logs`` clients following ``chatty``'s logs
(``/api/v1/apps/chatty/logs?follow=1``), then the baseline again (so a machine whose other
load drifts shows as a drift between the two baselines). In each, a commit outside ``apps/`` every
``--every`` seconds makes one full no-op pass; its duration is trueup's own
(``reconcile_pass`` ``duration_s``). Each events client fetches ``/api/v1/overview`` after
every ``pass_finished``, as the dashboard's page does. Also reported: whether every events
client stayed connected and saw every pass, and the log lines the log clients got.

    python3 -m bench.sse [--n 20] [--clients 50] [--logs 3] [--seconds 60] [--every 2]

Needs a Docker engine with ``busybox:1.36``. Prints a Markdown table (docs/benchmarks.md keeps
the latest) and writes the samples to ``bench/results/sse-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import engine, generate
from bench.controller import LogTail, _free_port

CHATTY = """\
apiVersion: trueup/v1
kind: App
metadata: {name: chatty}
spec:
  image: busybox:1.36
  command: [sh, -c, "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.02; done"]
  init: true
  stopGracePeriod: 1s
"""


class Clients:
    """SSE clients on their own event loop in a thread, counting what they receive."""

    def __init__(self, url: str, events: int, logs: int) -> None:
        self.url, self.events, self.logs = url, events, logs
        self.passes = [0] * events
        self.frames = [0] * events
        self.ended = [False] * events
        self.log_lines = [0] * logs
        self.overviews = 0
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Event | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Clients:
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)

    def _run(self) -> None:
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        import aiohttp

        self.stop = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        limit = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=limit) as http:
            tasks = [asyncio.create_task(self._events(http, i)) for i in range(self.events)]
            tasks += [asyncio.create_task(self._logs(http, i)) for i in range(self.logs)]
            await asyncio.sleep(1.0)  # all connected
            self.ready.set()
            await self.stop.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _events(self, http: Any, i: int) -> None:
        refreshes: set[asyncio.Task[None]] = set()
        async with http.get(f"{self.url}/api/v1/events") as r:
            async for raw in r.content:
                if raw.startswith(b"event: "):
                    self.frames[i] += 1
                    if raw.startswith(b"event: pass_finished"):
                        self.passes[i] += 1
                        task = asyncio.create_task(self._overview(http))  # as a page does
                        refreshes.add(task)
                        task.add_done_callback(refreshes.discard)
        self.ended[i] = True

    async def _overview(self, http: Any) -> None:
        async with http.get(f"{self.url}/api/v1/overview") as r:
            await r.read()
            self.overviews += 1

    async def _logs(self, http: Any, i: int) -> None:
        async with http.get(f"{self.url}/api/v1/apps/chatty/logs?follow=1&tail=10") as r:
            async for raw in r.content:
                if raw.startswith(b"event: line"):
                    self.log_lines[i] += 1


def noop_passes(repo: Path, tail: LogTail, seconds: float, every: float) -> list[float]:
    """Commit a note every ``every`` s for ``seconds``; the durations of the no-op passes."""
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        tail.poll()
        mark = len(tail.events)
        generate.commit(repo, {f"notes/{uuid.uuid4().hex[:6]}.txt": f"{i}\n"}, f"note {i}")
        event = tail.wait("reconcile_pass", timeout=30, since=mark)
        if not event.get("changes"):
            out.append(float(event["duration_s"]))
        i += 1
        time.sleep(max(0.0, every - 0.1))
    return out


def summary(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    ms = sorted(s * 1000 for s in samples)
    p25 = ms[int(0.25 * len(ms))]
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"{statistics.median(ms):.1f} ms | {ms[0]:.1f} / {p25:.1f} / {p90:.1f} ms | {len(ms)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.sse", description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--logs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=2.0)
    args = parser.parse_args(argv)
    api = engine.client()
    instance = f"bench-sse-{uuid.uuid4().hex[:6]}"
    root = Path(tempfile.mkdtemp(prefix="trueup-bench-sse-"))
    repo = root / "repo"
    generate.make_repo(repo, args.n)
    generate.commit(repo, {"apps/chatty.yaml": CHATTY}, "chatty")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "controller.log"
    command = [sys.executable, "-m", "controller", "run", "--repo", str(repo), "--path", "apps",
               "--instance", instance, "--state-dir", str(root / "state"),
               "--interval", "600s", "--listen", f"127.0.0.1:{port}"]  # fmt: skip
    env = {**os.environ, "TRUEUP_LOG_FORMAT": "json", "TRUEUP_LOG_LEVEL": "info"}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
    tail = LogTail(log)
    result: dict[str, Any] = {"n": args.n, "clients": args.clients, "logs": args.logs}
    try:
        engine.wait_for(
            lambda: engine.running_count(api, engine.TRUEUP_INSTANCE, instance) == args.n + 1,
            timeout=180,
            what="every service running",
        )
        time.sleep(2.0)
        print(f"baseline: {args.seconds:.0f} s without clients", file=sys.stderr)
        result["baseline_s"] = noop_passes(repo, tail, args.seconds, args.every)
        print(f"loaded: {args.clients} event + {args.logs} log clients", file=sys.stderr)
        with Clients(url, args.clients, args.logs) as clients:
            result["loaded_s"] = noop_passes(repo, tail, args.seconds, args.every)
            time.sleep(1.0)
            result["passes_seen"] = list(clients.passes)
            result["clients_ended"] = sum(clients.ended)
            result["log_lines"] = list(clients.log_lines)
            result["overviews"] = clients.overviews
        print(f"baseline again: {args.seconds:.0f} s without clients", file=sys.stderr)
        result["after_s"] = noop_passes(repo, tail, args.seconds, args.every)
        result["load_average"] = os.getloadavg()
        result["dropped"] = sum(
            1 for e in tail.poll() + tail.events if e.get("event") == "events_client_dropped"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        engine.remove_all(api, engine.TRUEUP_INSTANCE, instance)
        engine.remove_network(api, f"trueup-{instance}")
    print(report(result))
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"sse-{stamp}.json").write_text(json.dumps(result, indent=2))
    return 0


def report(r: dict[str, Any]) -> str:
    passes = len(r.get("loaded_s", []))
    seen = r.get("passes_seen", [])
    lines = [
        f"| no-op pass, N={r['n']}+1 | median | min / p25 / p90 | passes |",
        "|---|---|---|---|",
        f"| no client | {summary(r.get('baseline_s', []))} |",
        f"| {r['clients']} `/api/v1/events` + {r['logs']} log streams | "
        f"{summary(r.get('loaded_s', []))} |",
        f"| no client, again | {summary(r.get('after_s', []))} |",
        "",
        f"events clients still connected at the end: {len(seen) - r.get('clients_ended', 0)}"
        f"/{len(seen)}; `pass_finished` seen per client: min {min(seen, default=0)}, max "
        f"{max(seen, default=0)} (passes in the loaded phase: {passes} no-op, plus any other); "
        f"clients dropped: {r.get('dropped', 0)}; `/api/v1/overview` fetched after each pass by "
        f"every client (as the page does): {r.get('overviews', 0)}; log lines per log client: "
        f"{r.get('log_lines', [])}; load average at the end: {r.get('load_average')}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
