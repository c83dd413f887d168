"""The Grafana dashboard and the Prometheus alert rules shipped in docs/: the rules pass
`promtool check rules` and their unit tests (each alert fires on its series and not on the
healthy ones), and every series either file names is one trueup exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controller.http.metrics import Metrics
from tests.http.conftest import serve

DOCS = Path(__file__).resolve().parents[2] / "docs"
RULES = DOCS / "prometheus" / "trueup-rules.yaml"
DASHBOARD = DOCS / "grafana" / "trueup.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
NAME = re.compile(r"\btrueup_[a-z_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (scripts/ensure-test-tools installs it)")
    return found


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    check = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    assert b"3 rules found" in check.stdout
    unit = subprocess.run(
        [promtool(), "test", "rules", "trueup-rules.test.yaml"],
        cwd=RULES.parent,
        capture_output=True,
    )
    assert unit.returncode == 0, unit.stdout.decode() + unit.stderr.decode()


def exprs() -> dict[str, list[str]]:
    """Every PromQL expression of the rules and of the dashboard (panels and variables)."""
    rules = yaml.safe_load(RULES.read_text())
    alerts = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    board = json.loads(DASHBOARD.read_text())
    panels = [t["expr"] for p in board["panels"] for t in p["targets"]]
    variables = [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return {"rules": alerts, "dashboard": panels + variables}


async def test_every_series_named_is_one_trueup_exports(tmp_path: Path) -> None:
    """The registry of a controller (process metrics included) exports each trueup_* name
    the rules and the dashboard use; the three alerts are the ones the README promises."""
    s = await serve(tmp_path)
    try:
        metrics = Metrics()
        metrics.attach(s.controller)
        exported: set[str] = set()
        for family in metrics.registry.collect():
            for suffix in SUFFIXES.get(family.type, ("",)):
                exported.add(family.name + suffix)
    finally:
        await s.http.close()
        await s.server.close()
        s.controller.reconciler.source.close()
    for where, found in exprs().items():
        named = {n for e in found for n in NAME.findall(e)}
        assert named, where
        assert named <= exported, f"{where} names series trueup does not export: {named - exported}"
    rules = yaml.safe_load(RULES.read_text())
    assert [r["alert"] for r in rules["groups"][0]["rules"]] == [
        "TrueupNoSuccessfulPass", "TrueupAppDegraded", "TrueupGitFetchFailing",
    ]  # fmt: skip


def test_dashboard_panels_are_well_formed() -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"] == "trueup"
    for p in board["panels"]:
        assert p["targets"] and p["title"], p
        assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
