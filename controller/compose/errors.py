"""Pydantic errors of a translated service (the manifest's ``App`` model), told in compose
terms: at the compose key the field came from, named by its compose path."""

from __future__ import annotations

from typing import Any

from controller.compose.context import Translation
from controller.manifests.models import UNION_TAGS
from controller.manifests.yamlmarks import Path


def describe(err: Any, out: Translation) -> tuple[Path, str]:
    """(compose path, message) of one pydantic error of ``out``'s ``App``."""
    loc: Path = tuple(p for p in err["loc"] if p not in UNION_TAGS)
    kind = err["type"]
    if kind == "rule":
        at = err.get("ctx", {}).get("at", "")
        extra: Path = tuple(int(p) if p.isdigit() else p for p in at.split(".") if p)
        loc = (*loc, *extra)
    message = str(err["msg"])
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = f"{loc[-1]} is missing"
        loc = loc[:-1]
    elif kind == "value_error" and message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif message.startswith("Input should be "):
        message = "must be " + message[len("Input should be ") :]
    if kind == "literal_error" and "expected" in err.get("ctx", {}):
        message = f"must be one of {err['ctx']['expected']}"
    return out.compose_path(loc), message
