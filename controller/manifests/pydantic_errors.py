"""Pydantic validation errors of the ``App`` model, read the way trueup reports them: the
manifest path an error belongs to, and its message in trueup's words. Shared by the manifest
loader and the compose translation, which each add where the path is in their own file."""

from __future__ import annotations

from typing import Any

from controller.manifests.models import UNION_TAGS
from controller.manifests.yamlmarks import Path


def error_path(err: Any) -> Path:
    """The manifest path of one pydantic error: union tags dropped, and a cross-field rule's
    ``at`` (a dotted path relative to the model that raised it) appended."""
    loc: Path = tuple(p for p in err["loc"] if p not in UNION_TAGS)
    if err["type"] == "rule":
        at = err.get("ctx", {}).get("at", "")
        extra: Path = tuple(int(p) if p.isdigit() else p for p in at.split(".") if p)
        loc = (*loc, *extra)
    return loc


def plain_message(err: Any) -> str:
    """Pydantic's message without its prefixes (``Value error, ``; ``Input should be `` →
    ``must be ``), or the allowed values of a literal."""
    kind = err["type"]
    message = str(err["msg"])
    if kind == "value_error" and message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if message.startswith("Input should be "):
        message = "must be " + message[len("Input should be ") :]
    if kind == "literal_error" and "expected" in err.get("ctx", {}):
        message = f"must be one of {err['ctx']['expected']}"
    return message
