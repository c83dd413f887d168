"""Pydantic errors of a translated service (the manifest's ``App`` model), told in compose
terms: at the compose key the field came from, named by its compose path."""

from __future__ import annotations

from typing import Any

from controller.compose.context import Translation
from controller.manifests.pydantic_errors import error_path, plain_message
from controller.manifests.yamlmarks import Path


def describe(err: Any, out: Translation) -> tuple[Path, str]:
    """(compose path, message) of one pydantic error of ``out``'s ``App``."""
    loc = error_path(err)
    kind = err["type"]
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = f"{loc[-1]} is missing"
        loc = loc[:-1]
    else:
        message = plain_message(err)
    return out.compose_path(loc), message
