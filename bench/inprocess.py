"""An in-process no-op pass at large N (500 by default), on the in-memory `FakeRuntime`.

What is timed is `Reconciler.run_pass` as the controller loop calls it, after a first pass
has populated the fake engine: git tip → manifests (cached by the tree id of ``--path``) →
desired state → one list call → plan → nothing to apply. The fake engine answers instantly,
so this isolates trueup's own CPU cost per pass; the real engine's list call at N=40 is in
the `trueup run` scenario.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import generate


async def _measure(repo: Path, state: Path, passes: int) -> dict[str, Any]:
    from controller.reconciler import Reconciler
    from controller.runtime.fake import FakeRuntime
    from controller.source import GitSource
    from controller.targets.containers.apply import Applier
    from controller.targets.containers.plan import make_plan
    from controller.targets.containers.target import ContainerTarget
    from controller.targets.observed import observe

    runtime = FakeRuntime(instance="bench", images=[generate.IMAGE])
    target = ContainerTarget(runtime)
    with GitSource(str(repo), state_dir=state) as source:
        reconciler = Reconciler(source, target, instance="bench", path="apps")
        desired, problems = await reconciler.desire(await reconciler.manifest_files(rev=None))
        assert not problems, problems[:3]
        plan = make_plan(desired, observe(await runtime.list()))

        async def no_context(context: str, dockerfile: str) -> bytes:
            raise AssertionError("no builds in the benchmark")

        applier = Applier(runtime, desired, instance="bench", read_context=no_context, settle_s=0)
        outcomes = await applier.run(plan)
        assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
        fresh = Reconciler(source, target, instance="bench", path="apps")
        started = time.perf_counter()
        first = await fresh.run_pass()
        first_s = time.perf_counter() - started
        assert first.plan.in_sync, first.plan.changes[:3]
        durations = []
        for _ in range(passes):
            started = time.perf_counter()
            result = await fresh.run_pass()
            durations.append(time.perf_counter() - started)
            assert result.plan.in_sync
        return {
            "runtime": "FakeRuntime (in memory)",
            "first_pass_s": first_s,
            "noop_pass_s": durations,
            "median_s": statistics.median(durations),
        }


def run(n: int = 500, passes: int = 20) -> dict[str, Any]:
    """Time ``passes`` no-op passes over ``n`` apps; returns the samples and the median."""
    import structlog

    saved = structlog.get_config()  # restored after: callers (tests) keep their logging
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40)  # errors only: no log cost
    )
    try:
        with tempfile.TemporaryDirectory(prefix="trueup-bench-inproc-") as tmp:
            repo = Path(tmp) / "repo"
            generate.make_repo(repo, n)
            result = asyncio.run(_measure(repo, Path(tmp) / "state", passes))
    finally:
        structlog.configure(**saved)
    result["n"] = n
    return result


if __name__ == "__main__":
    import json
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    out = run(size)
    print(json.dumps({k: v for k, v in out.items() if k != "noop_pass_s"}, indent=2))
