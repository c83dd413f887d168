"""The compose settings reach the pass (`trueup run` and the one-shot commands), and
`trueup validate` says which files it did not read as manifests, and why."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from controller.cli.main import main
from controller.cli.run import RunOptions
from controller.daemon.history import History
from controller.daemon.run import make_controller
from controller.http.metrics import Metrics
from controller.routes import NoRouter
from controller.runtime.fake import FakeRuntime
from controller.settings import load_settings
from controller.source import GitSource
from controller.source.hostvars import ComposeHost
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

SHOP = """\
services:
  web:
    image: busybox:${TAG}
    container_name: fixed
"""


def test_run_takes_the_compose_settings_from_file_env_and_flags(tmp_path: Path) -> None:
    """Config file, then TRUEUP_COMPOSE_*, then flags; the controller's reconciler reads
    compose projects with them."""
    config = tmp_path / "trueup.yaml"
    config.write_text("compose_profiles: [debug]\ncompose_repo_secrets: true\n")
    run = main.commands["run"]
    args = ["--config", str(config), "--compose-profile", "web", "--compose-profile", "db"]
    opts = RunOptions.read(run.make_context("run", args).params)
    env = {"TRUEUP_COMPOSE_VARS_DIR": str(tmp_path / "vars")}
    settings = load_settings(opts.config_file, opts.overrides, env=env)
    assert settings.compose() == ComposeHost(frozenset({"web", "db"}), tmp_path / "vars", True)
    from_env = load_settings(None, {}, env={"TRUEUP_COMPOSE_PROFILES": "a, b"})
    assert from_env.compose_profiles == ("a", "b")
    make_repo(tmp_path / "repo", {"README.md": "x\n"})
    with GitSource(str(tmp_path / "repo"), state_dir=tmp_path / "state") as source:
        controller = make_controller(
            settings,
            source,
            ContainerTarget(FakeRuntime(instance="t")),
            NoRouter(),
            History(tmp_path / "history.db"),
            Metrics(process=False),
            b"k" * 32,
        )
        assert controller.reconciler.compose == settings.compose()


def test_validate_lists_skipped_files_and_warnings_with_host_variables(tmp_path: Path) -> None:
    """A project's data file is listed as skipped, an ignored key as a located warning, and
    ``--compose-vars-dir`` supplies the project's variables (else a located error)."""
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {"shop/compose.yaml": SHOP, "shop/prometheus.yml": "global: {}\n", "apps/x.md": "x\n"},
    )
    runner = CliRunner()
    unset = runner.invoke(main, ["validate", "--repo", str(repo)])
    assert unset.exit_code == 1
    assert "shop/compose.yaml:3:12: services.web.image:" in unset.stdout
    variables = tmp_path / "vars"
    variables.mkdir()
    (variables / "shop.env").write_text("TAG=1.36\n")
    found = runner.invoke(
        main, ["validate", "--repo", str(repo), "--compose-vars-dir", str(variables)]
    )
    assert found.exit_code == 0, found.output
    lines = found.stdout.splitlines()
    assert any(
        line.startswith("skipped: ")
        and line.endswith("prometheus.yml (data of compose project shop)")
        for line in lines
    ), lines
    assert any(":4:5: warning: " in line and "container_name" in line for line in lines), lines
    assert "1 app(s)" in found.stderr
