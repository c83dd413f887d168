"""``spec.files`` through whole passes on the real engines (Docker and Podman): a commit that
does not touch a file keeps the containers, one that does replaces them, and with ``reload``
the same change keeps them and the process sees the new content."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.reconciler import PassResult, Reconciler
from controller.runtime import Runtime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import commit_files, make_repo

pytestmark = pytest.mark.integration

APP = """\
apiVersion: trueup/v1
kind: App
metadata: {name: conf}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - trap 'cat /etc/app/app.conf > /tmp/seen' HUP; cat /etc/app/app.conf > /tmp/seen;
      while true; do sleep 0.1; done
  files: [{path: /etc/app/app.conf, source: config/app.conf}]
  init: true
  stopGracePeriod: 1s
"""


async def _pass(repo: Path, tmp_path: Path, runtime: Runtime) -> PassResult:
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        reconciler = Reconciler(source, ContainerTarget(runtime), instance=runtime.instance)
        result = await reconciler.run_pass()
    assert result.problems == [] and not result.failed, result.outcomes
    return result


async def _state(runtime: Runtime) -> tuple[set[str], str]:
    """The app's container ids and what its process read (last)."""
    rows = [c for c in await runtime.list() if c.app == "conf" and c.running]
    seen = await runtime.exec(rows[0].id, ["cat", "/tmp/seen"], timeout=10)
    return {c.id for c in rows}, seen.output


async def _until_seen(runtime: Runtime, text: str) -> tuple[set[str], str]:
    for _ in range(50):
        ids, seen = await _state(runtime)
        if seen == text:
            break
        await asyncio.sleep(0.1)
    return ids, seen


@pytest.mark.parametrize("reload", [False, True], ids=["replace", "reload"])
async def test_a_file_change_replaces_or_reloads_and_other_commits_keep_the_containers(
    real_runtime: Runtime, tmp_path: Path, reload: bool
) -> None:
    """The process reads the committed file at start; a README commit keeps the container;
    changing the file replaces it (without ``reload``) or keeps it and signals it (with)."""
    repo = tmp_path / "repo"
    manifest = APP + ("  reload: {signal: SIGHUP}\n" if reload else "")
    make_repo(repo, {"apps/conf.yaml": manifest, "config/app.conf": "v1\n", "README.md": "x\n"})
    await _pass(repo, tmp_path, real_runtime)
    ids, seen = await _state(real_runtime)
    assert seen == "v1\n" and len(ids) == 1
    commit_files(repo, {"README.md": "docs\n"}, "docs")
    assert (await _pass(repo, tmp_path, real_runtime)).plan.changes == ()
    assert (await _state(real_runtime))[0] == ids
    commit_files(repo, {"config/app.conf": "v2\n"}, "conf")
    changed = await _pass(repo, tmp_path, real_runtime)
    assert [c.action for c in changed.plan.changes] == ["update"]
    now, seen = await _until_seen(real_runtime, "v2\n")
    assert seen == "v2\n"
    assert (now == ids) if reload else now.isdisjoint(ids)
    assert (await _pass(repo, tmp_path, real_runtime)).plan.changes == ()
