"""`trueup suspend` / `trueup resume` without a running controller (the state dir's file,
under its lock), and `trueup status`'s lines about the sync mode."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from controller.cli.inspect import sync_lines
from controller.cli.main import main
from controller.daemon.lock import StateLock
from controller.daemon.overrides import Overrides


def test_suspend_and_resume_edit_the_state_dir_when_no_controller_runs(tmp_path: Path) -> None:
    """The override lands in overrides.json (kept by the next `trueup run`); resume removes it."""
    runner = CliRunner()
    result = runner.invoke(main, ["suspend", "web", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "web suspended" in result.output and "when trueup run starts" in result.output
    assert Overrides.load(tmp_path).suspended == {"web"}
    assert json.loads((tmp_path / "overrides.json").read_text())["suspended"] == ["web"]
    result = runner.invoke(main, ["resume", "web", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert Overrides.load(tmp_path).suspended == set()


def test_suspend_refuses_a_bad_name_and_a_running_controller_without_token(
    tmp_path: Path,
) -> None:
    """Not an app name: exit 2. A controller holds the state dir: the file is not touched,
    and without --api-token-file the command says it needs the token."""
    runner = CliRunner()
    result = runner.invoke(main, ["suspend", "Web_1", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not an app name" in result.output
    lock = StateLock(tmp_path)
    lock.acquire()
    try:
        (tmp_path / "status.json").write_text(json.dumps({"api": "http://127.0.0.1:9"}))
        result = runner.invoke(main, ["suspend", "web", "--state-dir", str(tmp_path)])
        assert result.exit_code == 2 and "--api-token-file" in result.output
        token = tmp_path / "token"
        token.write_text("t\n")
        args = ["suspend", "web", "--state-dir", str(tmp_path), "--api-token-file", str(token)]
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and "cannot reach the controller's API" in result.output
    finally:
        lock.release()
    assert not (tmp_path / "overrides.json").exists()


def test_status_lines_name_the_mode_the_pending_revision_and_suspended_apps() -> None:
    lines = sync_lines(
        {
            "sync": "manual",
            "approved_revision": "a" * 40,
            "pending": {"revision": "b" * 40, "subject": "web: v2", "apps": ["web"]},
            "suspended": ["api"],
        }
    )
    assert lines[0] == "sync: manual (approved revision aaaaaaaaaaaa)"
    assert lines[1].startswith("pending: bbbbbbbbbbbb 'web: v2' changes web")
    assert lines[2] == "suspended (trueup resume APP): api"
    assert sync_lines({}) == []
