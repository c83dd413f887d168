"""`trueup run`'s wiring (``daemon.run.serve``) on FakeRuntime: a step that fails part-way
closes what was opened before it, and says what failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.daemon import run
from controller.errors import ConfigError
from controller.runtime.fake import FakeRuntime
from controller.settings import Settings
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import make_repo

MANIFEST = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\nspec: {image: busybox:1.36}\n"


class Runtime(FakeRuntime):
    closed = False

    async def close(self) -> None:
        self.closed = True


async def test_an_unusable_history_is_a_config_error_and_the_claim_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """history.db that SQLite cannot open (here a directory) stops `trueup run` with a
    ConfigError naming it, before anything reconciles; the instance's claim on the engine is
    released and the engine connection closed."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": MANIFEST})
    state = tmp_path / "state"
    (state / "history.db").mkdir(parents=True)
    runtime = Runtime(instance="t", images=["busybox:1.36"])
    monkeypatch.setattr(run, "open_target", lambda settings: ContainerTarget(runtime))
    settings = Settings(repo=str(repo), state_dir=state, instance="t", listen="off")
    with pytest.raises(ConfigError, match=r"history\.db"):
        await run.serve(settings)
    assert runtime.claims == {} and runtime.closed
    assert runtime.calls["create"] == 0
