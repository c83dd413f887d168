"""The JSON Schema of manifest v1, generated from the pydantic models.

Editors validate manifests as they are typed with it (yaml-language-server modeline, see the
README). ``trueup schema`` writes it to ``schemas/``; a test fails when the committed copy is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.manifests.models import App

SCHEMA_FILE = "app.v1.json"
SCHEMA_ID = "https://trueup.dev/schemas/app.v1.json"


def app_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one ``kind: App`` document."""
    schema = App.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "trueup App (apiVersion trueup/v1)",
        **schema,
    }


def render() -> str:
    """The schema as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(app_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(out_dir: Path) -> Path:
    """Write the schema into ``out_dir``; return the file written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / SCHEMA_FILE
    target.write_text(render(), encoding="utf-8")
    return target
