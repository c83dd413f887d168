"""The source collects a compose file's ``.env`` with it (at a commit and on disk, and when
``--path`` names the compose file), and no other ``.env``."""

from __future__ import annotations

import os
from pathlib import Path

from controller.source import GitSource, read_worktree
from tests.gitutil import make_repo

FILES = {
    "stacks/shop/compose.yaml": "services: {web: {image: busybox:1.36}}\n",
    "stacks/shop/.env": "TAG=1.36\n",
    "stacks/shop/prometheus.yml": "global: {}\n",
    "apps/.env": "NOT=collected\n",
    "apps/web.yaml": "kind: App\n",
}
EXPECTED = [
    "apps/web.yaml",
    "stacks/shop/.env",
    "stacks/shop/compose.yaml",
    "stacks/shop/prometheus.yml",
]


def test_the_env_beside_a_compose_file_comes_with_it(tmp_path: Path) -> None:
    """At a commit and on disk: the project's ``.env`` is collected, an ``.env`` in a folder
    without a compose file is not (it is no concern of trueup's)."""
    repo = tmp_path / "repo"
    make_repo(repo, FILES)
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        sha = source.resolve(None).sha
        assert list(source.manifest_files(sha, ".").files) == EXPECTED
        single = source.manifest_files(sha, "stacks/shop/compose.yaml")
        assert list(single.files) == ["stacks/shop/.env", "stacks/shop/compose.yaml"]
    assert list(read_worktree(repo).files) == EXPECTED
    single_disk = read_worktree(repo, "stacks/shop/compose.yaml")
    assert list(single_disk.files) == ["stacks/shop/.env", "stacks/shop/compose.yaml"]


def test_a_symlinked_env_that_leaves_the_repository_is_skipped(tmp_path: Path) -> None:
    """The same symlink rule as for manifests: a link out of the repository is not read."""
    outside = tmp_path / "host.env"
    outside.write_text("SECRET=host\n")
    repo = tmp_path / "repo"
    files = {k: v for k, v in FILES.items() if k != "stacks/shop/.env"}
    make_repo(repo, files)
    os.symlink(outside, repo / "stacks/shop/.env")
    assert "stacks/shop/.env" not in read_worktree(repo).files
