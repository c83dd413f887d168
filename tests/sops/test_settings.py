"""``sops_age_key_file``: one path or a list, from the config file, ``TRUEUP_*`` or flags."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from controller.cli.groups import PolicyOptions
from controller.cli.main import main
from controller.settings import load_settings


def test_one_path_or_a_list(tmp_path: Path) -> None:
    """A single path and a list both work; the environment takes a comma-separated list."""
    config = tmp_path / "trueup.yaml"
    config.write_text("sops_age_key_file: /etc/trueup/age.key\n")
    assert load_settings(config, {}, env={}).sops_age_key_file == (Path("/etc/trueup/age.key"),)
    env = {"TRUEUP_SOPS_AGE_KEY_FILE": "/a.key,/b.key"}
    assert load_settings(config, {}, env=env).sops_age_key_file == (Path("/a.key"), Path("/b.key"))
    assert load_settings(None, {}, env={}).sops_age_key_file == ()


def test_one_shot_flag_is_repeatable() -> None:
    """``--sops-age-key-file`` may be given several times to diff/apply/validate."""
    command = main.commands["diff"]
    ctx = command.make_context("diff", ["--sops-age-key-file", "/a", "--sops-age-key-file", "/b"])
    assert PolicyOptions.read(ctx.params).sops_age_key_files == (Path("/a"), Path("/b"))
    assert "--sops-age-key-file FILE" in CliRunner().invoke(main, ["validate", "--help"]).output
