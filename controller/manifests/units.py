"""Parsing of the human units used in manifests: durations (``500ms``, ``5s``, ``1m``) and
sizes (``256Mi``, ``1G``). Pure functions; the models call them from validators."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(|k|K|M|G|T|Ki|Mi|Gi|Ti)\s*$")
_SIZE_FACTORS = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}

DURATION_PATTERN = r"^\d+(\.\d+)?(ms|s|m|h)$"
SIZE_PATTERN = r"^\d+(\.\d+)?(k|K|M|G|T|Ki|Mi|Gi|Ti)?$"


def parse_duration(value: object) -> float:
    """Return seconds for ``"500ms"``, ``"5s"``, ``"1m"``, ``"2h"``; bare numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 5s or 1m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_FACTORS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration; use e.g. 500ms, 5s, 1m or 2h")


def parse_size(value: object) -> int:
    """Return bytes for ``"256Mi"``, ``"1G"``, ``"512k"``; bare integers are bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 256Mi or 1G")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2)])
    raise ValueError(f"{value!r} is not a size; use e.g. 256Mi, 1Gi, 512M or 1G")
