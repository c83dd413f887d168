"""``diff --worktree`` identifies build contexts on disk without leaving the repository and
without opening anything but regular files: a context that is a symlink out of the repository,
or one holding a FIFO, device or socket, is a located error for its app; the others plan."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from controller.errors import SourceError
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.source.worktree import context_id
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

BUILT = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec: {build: {context: svc}}\n"
PLAIN = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: api}\nspec: {image: busybox:1.36}\n"


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {"apps/web.yaml": BUILT, "apps/api.yaml": PLAIN, "svc/Dockerfile": "FROM busybox:1.36\n"},
    )
    return repo


def _diff_worktree(repo: Path, tmp_path: Path, unblock: Path | None = None) -> list[str]:
    """The problems of a `diff --worktree` pass; a read stuck on ``unblock`` (a FIFO) is
    released after 10 s so a regression fails instead of hanging the suite."""
    rescue = threading.Timer(10, lambda: os.close(os.open(unblock, os.O_RDWR)) if unblock else None)
    rescue.start()
    try:

        async def run() -> list[str]:
            with GitSource(str(repo), state_dir=tmp_path / "state") as source:
                runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
                result = await Reconciler(source, ContainerTarget(runtime), instance="t").run_pass(
                    worktree=True, apply=False
                )
                assert [c.app for c in result.plan.changes] == ["api"]
                return [str(p) for p in result.problems]

        return asyncio.run(run())
    finally:
        rescue.cancel()
        assert rescue.finished.is_set() or not rescue.is_alive()


def test_fifo_in_context_is_refused_not_read(tmp_path: Path) -> None:
    """A FIFO in the context is never opened: the app fails with the file named."""
    repo = _repo(tmp_path)
    fifo = repo / "svc" / "pipe"
    os.mkfifo(fifo)
    problems = _diff_worktree(repo, tmp_path, unblock=fifo)
    assert len(problems) == 1, problems
    assert problems[0].startswith("apps/web.yaml:1:1: app web: build context 'svc': pipe is not")


def test_context_symlinked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    """A context folder that is a symlink to a folder outside the repository is not read."""
    repo = _repo(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM busybox:1.36\n")
    (outside / "secret.txt").write_text("host file\n")
    for f in (repo / "svc").iterdir():
        f.unlink()
    (repo / "svc").rmdir()
    (repo / "svc").symlink_to(outside)
    problems = _diff_worktree(repo, tmp_path)
    assert problems == ["apps/web.yaml:1:1: app web: build context 'svc' leaves the repository "
                        "(through a symlink)"]  # fmt: skip


def test_symlinks_inside_a_context_are_hashed_as_links(tmp_path: Path) -> None:
    """A symlink in the context (even to a host file or a FIFO) is its target text, unfollowed."""
    repo = _repo(tmp_path)
    before = context_id(repo, "svc")
    os.mkfifo(tmp_path / "fifo")
    (repo / "svc" / "link").symlink_to(tmp_path / "fifo")
    (repo / "svc" / "dir").symlink_to("/etc")
    with_links = context_id(repo, "svc")
    assert with_links != before
    (repo / "svc" / "link").unlink()
    (repo / "svc" / "link").symlink_to("/somewhere/else")
    assert context_id(repo, "svc") != with_links
    with pytest.raises(SourceError, match="not a folder"):
        context_id(repo, "apps/web.yaml")
