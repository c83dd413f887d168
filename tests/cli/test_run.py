"""`trueup run`'s options become the settings overrides: what is given, and nothing else."""

from __future__ import annotations

from pathlib import Path

from controller.cli.main import main
from controller.cli.run import RunOptions
from controller.settings import load_settings


def test_run_flags_are_settings_keys_and_the_rest_is_none(tmp_path: Path) -> None:
    """Each flag lands on its settings key; a flag not given is None, so load_settings keeps
    the config's value for it."""
    config = tmp_path / "trueup.yaml"
    config.write_text("interval: 5s\ninstance: from-file\n")
    run = main.commands["run"]
    args = ["--config", str(config), "--path", "apps", "--allow-cap", "NET_ADMIN"]
    opts = RunOptions.read(run.make_context("run", args).params)
    assert opts.config_file == config
    given = {k: v for k, v in opts.overrides.items() if v is not None}
    assert given == {"path": "apps", "allowed_capabilities": ("NET_ADMIN",)}
    settings = load_settings(opts.config_file, opts.overrides, env={})
    assert (settings.path, settings.interval, settings.instance) == ("apps", 5.0, "from-file")
    assert settings.allowed_capabilities == ("NET_ADMIN",)
