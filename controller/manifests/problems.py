"""A located problem in a manifest file: what every validation error is reported as.

Its own module (no pydantic, no YAML) so that code which only reports or passes problems on
does not load the manifest models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in a manifest file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"
