"""Scenarios under `trueup run` (no process start-up): what a resident controller costs.

One controller follows a bench repository (``--path apps``, a long ``--interval`` so only
commits and engine events trigger passes) on the engine's own socket. Measured:

* no-op pass: commits outside ``apps/`` move the branch, so each triggers a full pass that
  finds nothing to do; the duration is trueup's own (``reconcile_pass`` ``duration_s``) and the
  engine requests per pass are counted both by trueup (the runtime adapter's ``calls``, read
  from ``trueup_runtime_api_calls_total`` on ``/metrics``) and, independently, by a unix-socket
  proxy between a second controller (same repository, state and containers, started after
  the first stopped) and the engine: the relay's own latency stays out of the timed passes;
* commit → converged: a commit edits one service; from the commit's return until the engine
  shows exactly one running container of that service at the new revision;
* removed → replaced: one service's container is force-removed; from the removal until a new
  container of that service runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench import engine, generate
from bench.peers import Tool


class LogTail:
    """New JSON log events of a process writing to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        fresh = []
        for line in data[:end].splitlines():
            with suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    fresh.append(event)
        self.events.extend(fresh)
        return fresh

    def wait(self, name: str, *, timeout: float, since: int) -> dict[str, Any]:
        """The first event ``name`` at index ``since`` or later."""
        deadline = time.perf_counter() + timeout
        while True:
            self.poll()
            for event in self.events[since:]:
                if event.get("event") == name:
                    return event
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no {name} event within {timeout:.0f}s")
            time.sleep(0.01)


def api_calls(port: int) -> int | None:
    """trueup's own count of engine requests so far (all ops), from its /metrics."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("trueup_runtime_api_calls_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _upstream_socket() -> str | None:
    url = engine.engine_url()
    return url.removeprefix("unix://") if url.startswith("unix://") else None


def _app_rows(api: Any, instance: str, app: str) -> list[dict[str, Any]]:
    return [
        row
        for row in engine.containers(api, engine.TRUEUP_INSTANCE, instance)
        if (row.get("Labels") or {}).get("trueup.app") == app
    ]


def run_controller(
    tool: Tool, root: Path, n: int, repeat: int, api: Any, instance: str, log: Any = print
) -> dict[str, Any]:
    """Start `trueup run`, measure, stop it, clean up; returns the samples.

    The timed controller talks to the engine's own socket, as Compose does (a relay in
    between adds its own latency to every pass: ~1 ms of a ~7 ms pass through the Python
    counting proxy). A second controller, started after it on the same repository, state and
    containers, goes through the counting proxy for the independent count of requests per
    no-op pass (its start-up pass is a no-op: everything already runs)."""
    repo = root / "controller-repo"
    generate.make_repo(repo, n)
    state = root / "controller-state"
    port = _free_port()
    command = [
        *tool.command,
        "run",
        "--repo",
        str(repo),
        "--path",
        "apps",
        "--instance",
        instance,
        "--state-dir",
        str(state),
        "--interval",
        "600s",
        "--listen",
        f"127.0.0.1:{port}",
    ]
    out: dict[str, Any] = {
        "noop_pass_s": [],
        "api_calls_trueup": [],
        "api_calls_proxy": [],
        "commit_to_converged_s": [],
        "removed_to_replaced_s": [],
        "proxy": False,
    }
    engine.remove_all(api, engine.TRUEUP_INSTANCE, instance)
    notes = iter(range(10_000))
    try:
        with _Controller(command, root / "controller.log") as ctl:
            started = time.perf_counter()
            ctl.tail.wait("reconcile_pass", timeout=180, since=0)
            engine.wait_for(
                lambda: engine.running_count(api, engine.TRUEUP_INSTANCE, instance) == n,
                timeout=180,
                what=f"{n} running containers",
            )
            out["startup_converged_s"] = time.perf_counter() - started
            time.sleep(1.0)  # let the follow-up passes of the start-up settle
            for _ in range(max(2, repeat * 2)):
                own_before = api_calls(port)
                event = ctl.noop_pass(repo, next(notes))
                if event is None:
                    continue  # not a no-op pass (should not happen): not counted
                out["noop_pass_s"].append(float(event["duration_s"]))
                own_after = api_calls(port)
                if own_before is not None and own_after is not None:
                    out["api_calls_trueup"].append(own_after - own_before)
            _converge_and_replace(out, repo, api, instance, n, repeat)
            out["log_tail"] = ctl.log_tail()
        _count_through_proxy(out, command, root, repo, notes)
        log(
            f"  trueup run: no-op pass {_median(out['noop_pass_s']) * 1000:.1f} ms, "
            f"commit→converged {_median(out['commit_to_converged_s']):.2f}s, "
            f"removed→replaced {_median(out['removed_to_replaced_s']):.2f}s"
        )
    finally:
        engine.remove_all(api, engine.TRUEUP_INSTANCE, instance)
        engine.remove_network(api, f"trueup-{instance}")
    return out


class _Controller:
    """One `trueup run` process logging JSON to ``logfile``; stopped (SIGTERM) on exit."""

    def __init__(self, command: list[str], logfile: Path) -> None:
        self.command = command
        self.logfile = logfile
        env = {**os.environ, "TRUEUP_LOG_FORMAT": "json", "TRUEUP_LOG_LEVEL": "info"}
        with logfile.open("wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
        self.tail = LogTail(logfile)

    def __enter__(self) -> _Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def noop_pass(self, repo: Path, i: int) -> dict[str, Any] | None:
        """Commit outside ``apps/`` and return the pass it triggers (None if it changed
        something)."""
        self.tail.poll()
        mark = len(self.tail.events)
        generate.commit(repo, {f"notes/{i}.txt": f"note {i}\n"}, f"bench: note {i}")
        event = self.tail.wait("reconcile_pass", timeout=30, since=mark)
        return None if event.get("changes") else event

    def log_tail(self) -> list[str]:
        return self.logfile.read_text(errors="replace").splitlines()[-5:]


def _converge_and_replace(
    out: dict[str, Any], repo: Path, api: Any, instance: str, n: int, repeat: int
) -> None:
    """commit → converged and removed → replaced, ``repeat`` times each."""
    names = generate.service_names(n)
    for i in range(repeat):
        app = names[0]
        release = frozenset({app}) if i % 2 == 0 else frozenset()
        sha = generate.commit(repo, generate.manifests(n, release), f"bench: change {i}")
        t0 = time.perf_counter()

        def converged(app: str = app, sha: str = sha) -> bool:
            rows = _app_rows(api, instance, app)
            return (
                len(rows) == 1
                and rows[0].get("State") == "running"
                and (rows[0].get("Labels") or {}).get("trueup.revision") == sha
            )

        engine.wait_for(converged, timeout=60, what=f"{app} at {sha[:8]}")
        out["commit_to_converged_s"].append(time.perf_counter() - t0)
        time.sleep(0.3)
    for i in range(repeat):
        app = names[1 + i % (n - 1)] if n > 1 else names[0]
        rows = _app_rows(api, instance, app)
        old = str(rows[0]["Id"])
        api.remove_container(old, force=True)
        t0 = time.perf_counter()

        def replaced(app: str = app, old: str = old) -> bool:
            rows = _app_rows(api, instance, app)
            return any(r["Id"] != old and r.get("State") == "running" for r in rows)

        engine.wait_for(replaced, timeout=60, what=f"{app} replaced")
        out["removed_to_replaced_s"].append(time.perf_counter() - t0)
        time.sleep(0.3)


def _count_through_proxy(
    out: dict[str, Any], command: list[str], root: Path, repo: Path, notes: Any
) -> None:
    """The engine requests of no-op passes, counted by a relay between a second controller
    and the engine (independent of trueup's own count); skipped for a non-socket engine."""
    from tests.runtime.httpcount import CountingProxy  # the suite's own independent counter

    upstream = _upstream_socket()
    if upstream is None:
        return
    proxy = CountingProxy(upstream, root / "engine.sock")
    try:
        counted = [*command, "--runtime-url", proxy.url]
        with _Controller(counted, root / "controller-counted.log") as ctl:
            ctl.tail.wait("reconcile_pass", timeout=180, since=0)  # start-up: a no-op
            time.sleep(1.0)
            for _ in range(3):
                before = len(proxy.requests)
                if ctl.noop_pass(repo, next(notes)) is not None:
                    out["api_calls_proxy"].append(len(proxy.requests) - before)
        out["proxy"] = True
    finally:
        proxy.close()


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values) if values else float("nan")
