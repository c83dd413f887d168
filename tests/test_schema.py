"""The committed JSON Schema matches the models, and really describes valid manifests."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from controller.cli.main import main
from controller.manifests import schema

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schema_is_current() -> None:
    """Run `trueup schema` after changing the models; this fails until you do."""
    committed = (ROOT / "schemas" / schema.SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema.render(), "schemas/ is stale: run `trueup schema`"


def test_schema_command_writes_file(tmp_path: Path) -> None:
    """`trueup schema --out DIR` writes the same document the test compares against."""
    result = CliRunner().invoke(main, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / schema.SCHEMA_FILE).read_text(encoding="utf-8") == schema.render()


def test_schema_requires_and_forbids_like_the_models() -> None:
    """Editors see the same rules: required top-level keys, no unknown spec fields."""
    doc = schema.app_schema()
    assert set(doc["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    spec = doc["$defs"]["Spec"]
    assert spec["additionalProperties"] is False
    assert {"image", "build", "healthCheck", "stopGracePeriod"} <= set(spec["properties"])


def test_examples_carry_the_modeline() -> None:
    """Every example manifest points yaml-language-server at the schema."""
    for path in (ROOT / "examples" / "apps").glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../../schemas/app.v1.json", path
        target = (path.parent / "../../schemas/app.v1.json").resolve()
        assert target.exists()
        assert yaml.safe_load(path.read_text())["apiVersion"] == "trueup/v1"
