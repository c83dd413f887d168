"""Every command accepts the options the README's "Command line" lists as common to all of them.

The list is read from the README itself, so a new common option that a command lacks fails
here. `trueup run` feeds the ones it uses into its settings, where flags override the config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from controller.cli.main import main
from controller.daemon.history import ActionRecord, History, PassRecord
from tests.gitutil import make_repo

ROOT = Path(__file__).resolve().parents[2]

#: A value for each placeholder of the README's "common:" line (else a choice's first).
SAMPLES = {
    "NAME": "t-common",
    "DIR": "{tmp}/state",
    "URL": "http://127.0.0.1:1",
    "REG": "127.0.0.1:5000/team",
    "B": "main",
    "F": "{tmp}/token",
    "PATH": "/srv",
    "CAP": "NET_ADMIN",
    "ADDR": "127.0.0.1:8080",
    "PORT|FIRST-LAST": "8000-9000",
}


def readme_common_options() -> list[tuple[str, str | None]]:
    """(option, placeholder or None for a flag) for every item of the README's "common:"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("\ncommon: ", 1)[1].split("```", 1)[0]
    items = [item.split() for item in " ".join(block.split()).split(",") if item.strip()]
    return [(item[0], item[1] if len(item) > 1 else None) for item in items]


def common_args(tmp: Path) -> list[str]:
    args: list[str] = []
    for option, placeholder in readme_common_options():
        args.append(option)
        if placeholder is not None:
            value = SAMPLES.get(placeholder) or placeholder.split("|")[0]
            args.append(value.format(tmp=tmp))
    return args


def test_readme_lists_the_common_options() -> None:
    """The parse below reads the line it should (a guard against checking nothing)."""
    options = dict(readme_common_options())
    assert options["--instance"] == "NAME" and options["--proxy-https"] is None
    assert len(options) >= 17


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_accepts_the_common_options(name: str, tmp_path: Path) -> None:
    """`trueup <command> <every common option>` parses: no "No such option"."""
    command = main.commands[name]
    required = ["web"] if name in ("logs", "suspend", "resume") else []
    try:
        command.make_context(name, [*required, *common_args(tmp_path)])
    except click.UsageError as exc:
        pytest.fail(f"trueup {name} refuses a common option: {exc.format_message()}")


def test_history_with_common_options_shows_the_passes(tmp_path: Path) -> None:
    """`trueup history --instance ...` (as a wrapper passing the common flags would run it)
    prints the recorded passes and an app's actions."""
    state = tmp_path / "state"
    state.mkdir()
    store = History(state / "history.db")
    store.record(
        PassRecord(1_700_000_000.0, 1.5, "a" * 40, "startup", "changed", 1, 0, ""),
        [ActionRecord("web", "create", "ok", "created", 1.2)],
    )
    store.close()
    args = common_args(tmp_path)  # --state-dir is tmp_path/state
    runner = CliRunner()
    passes = runner.invoke(main, ["history", "--output", "json", *args])
    assert passes.exit_code == 0, passes.output
    (row,) = json.loads(passes.output)["passes"]
    assert (row["trigger"], row["result"]) == ("startup", "changed")
    actions = runner.invoke(main, ["history", "web", *args])
    assert actions.exit_code == 0, actions.output
    assert "create" in actions.output and "created" in actions.output


def test_validate_and_schema_with_common_options_still_work(tmp_path: Path) -> None:
    """The common options change nothing for commands that have no use for them."""
    repo = tmp_path / "repo"
    manifest = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec: {image: x:1}\n"
    make_repo(repo, {"apps/web.yaml": manifest})
    runner = CliRunner()
    valid = runner.invoke(main, ["validate", "--repo", str(repo), *common_args(tmp_path)])
    assert valid.exit_code == 0, valid.output
    assert "1 app(s) in 1 file(s)" in valid.output
    out = tmp_path / "schemas"
    written = runner.invoke(main, ["schema", "--out", str(out), *common_args(tmp_path)])
    assert written.exit_code == 0, written.output
    assert (out / "app.v1.json").exists()


def test_run_takes_policy_and_https_flags_over_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`trueup run --allow-bind/--allow-cap/--allow-host-port/--allow-privileged/
    --allow-host-network/--proxy-https` reach the controller's settings; a flag not given
    keeps the config's value."""
    from controller.daemon import run as daemon

    seen: list[Any] = []

    async def serve(settings: Any) -> None:
        seen.append(settings)

    monkeypatch.setattr(daemon, "serve", serve)
    config = tmp_path / "trueup.yaml"
    config.write_text("allow_privileged: true\nallowed_capabilities: [SYS_TIME]\n")
    state = str(tmp_path / "state")
    runner = CliRunner()
    result = runner.invoke(main, ["run", "--config", str(config), "--state-dir", state])
    assert result.exit_code == 0, result.output
    kept = seen.pop()
    assert kept.allow_privileged and kept.allowed_capabilities == ("SYS_TIME",)
    assert not kept.allow_host_network and kept.allowed_bind_paths == () and not kept.proxy_https
    flags = ["--allow-host-network", "--allow-bind", "/srv", "--allow-bind", "/data",
             "--allow-cap", "NET_ADMIN", "--allow-host-port", "8000-9000",
             "--proxy-https"]  # fmt: skip
    result = runner.invoke(main, ["run", "--config", str(config), "--state-dir", state, *flags])
    assert result.exit_code == 0, result.output
    given = seen.pop()
    assert given.allow_privileged and given.allow_host_network and given.proxy_https
    assert given.allowed_bind_paths == ("/srv", "/data")
    assert given.allowed_capabilities == ("NET_ADMIN",)
    assert given.policy().allowed_host_ports == ((8000, 9000),)
