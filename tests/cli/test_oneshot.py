"""Pure parts of validate / diff / apply: how file names are shown, what the options hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.main import main
from controller.cli.oneshot import PassOptions, display_path


def test_display_path_is_relative_to_the_cwd_for_a_local_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A problem in a local repo names the file as the user can open it from where they are."""
    (tmp_path / "deploy").mkdir()
    monkeypatch.chdir(tmp_path)
    assert display_path("deploy", "apps/web.yaml") == "deploy/apps/web.yaml"
    assert display_path("https://git.example/x.git", "apps/web.yaml") == "apps/web.yaml"
    assert display_path(str(tmp_path / "missing"), "apps/web.yaml") == "apps/web.yaml"


def test_pass_options_of_diff_and_apply() -> None:
    """diff reads --worktree and plans with prune on; apply reads --no-prune/--allow-empty."""
    diff = main.commands["diff"]
    opts = PassOptions.read(diff.make_context("diff", ["--worktree", "--output", "json"]).params)
    assert (opts.worktree, opts.prune, opts.allow_empty, opts.output) == (True, True, False, "json")
    apply = main.commands["apply"]
    args = ["--no-prune", "--allow-empty", "--rev", "abc", "--path", "apps"]
    opts = PassOptions.read(apply.make_context("apply", args).params)
    assert (opts.worktree, opts.prune, opts.allow_empty) == (False, False, True)
    assert (opts.source.rev, opts.source.path) == ("abc", "apps")
