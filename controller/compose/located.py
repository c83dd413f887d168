"""Located problems of one compose file: where each compose path stands, the dotted names
problems carry (``services.web.ports[0]``), and the small shape checks every stage uses
(a mapping with known keys, a string, a list of strings, a list-or-map).

Every check reports and returns ``None`` (or a neutral value) instead of raising, so one
file's every problem is found in one pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from controller.compose.keys import did_you_mean
from controller.manifests.problems import Problem
from controller.manifests.yamlmarks import Document, Mark, Path

_BOOLEANS = {"true": True, "yes": True, "y": True, "on": True}
_BOOLEANS |= {"false": False, "no": False, "n": False, "off": False}


def dotted(path: Path) -> str:
    """``("services", "web", "ports", 0)`` → ``services.web.ports[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


@dataclass
class Report:
    """The problems (errors) and warnings of one compose file, each at its place."""

    file: str
    doc: Document | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    """Services with an error of their own."""
    broken: set[tuple[str, str]] = field(default_factory=set)
    """Top-level entries (``("volumes", "data")``) with a problem: a service using one fails."""

    def broken_since(self, count: int, section: str, key: str) -> bool:
        """True (and the entry recorded as broken) when problems were added since ``count``."""
        if len(self.problems) > count:
            self.broken.add((section, key))
            return True
        return False

    def undeclared(self, section: str, key: str) -> str:
        """Why a service cannot use the top-level ``section`` entry ``key``."""
        kind = section.rstrip("s")
        if (section, key) in self.broken:
            return f"{kind} {key!r} has a problem where it is declared (see there)"
        return f"{kind} {key!r} is not declared under the top-level {section}:"

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        if self.doc is None:
            return Mark(1, 1)
        return self.doc.locate(path, prefer_key=key)

    def at(self, mark: Mark, message: str) -> None:
        self.problems.append(Problem(self.file, mark.line, mark.column, message))

    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        """An error at ``path``'s value (or key); a service's error fails that service."""
        self.at(self.mark(path, key=key), f"{dotted(path)}: {message}")
        if len(path) >= 2 and path[0] == "services" and isinstance(path[1], str):
            self.failed.add(path[1])

    def warn(self, path: Path, message: str, *, key: bool = True) -> None:
        mark = self.mark(path, key=key)
        self.warnings.append(
            Problem(self.file, mark.line, mark.column, f"{dotted(path)}: {message}")
        )

    # shape checks -------------------------------------------------------------------------

    def mapping(
        self,
        path: Path,
        value: object,
        known: frozenset[str],
        unsupported: frozenset[str] = frozenset(),
        ignored: frozenset[str] = frozenset(),
        *,
        extensions: bool = False,
    ) -> dict[str, Any] | None:
        """``value`` as a mapping whose keys are checked: each unknown or unsupported key is
        an error, each ignored one a warning; ``x-*`` keys are skipped when ``extensions``.
        Returns the known keys only."""
        if not isinstance(value, dict):
            self.error(path, "must be a mapping")
            return None
        out: dict[str, Any] = {}
        for key, item in value.items():
            child = (*path, key if isinstance(key, str | int) else str(key))
            if not isinstance(key, str):
                self.error(child, "keys must be strings", key=True)
            elif key in known:
                out[key] = item
            elif key in unsupported:
                self.error(child, "not supported by trueup", key=True)
            elif key in ignored:
                self.warn(child, "ignored by trueup")
            elif extensions and key.startswith("x-"):
                continue
            else:
                hint = did_you_mean(key, known | unsupported | ignored)
                self.error(
                    child, "unknown key" + (f"; did you mean {hint!r}?" if hint else ""), key=True
                )
        return out

    def text(self, path: Path, value: object, *, numbers: bool = False) -> str | None:
        """A string; with ``numbers``, a number as its text (where Compose takes one: an
        environment value, a label, a port)."""
        if isinstance(value, str):
            return value
        if numbers and isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # as Compose prints it: 1.0 is "1"
        if numbers and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.error(path, "must be a string")
        return None

    def boolean(self, path: Path, value: object) -> bool | None:
        """true/false; as Compose casts them, also the text ``yes``/``no``, ``on``/``off``,
        ``y``/``n``, ``true``/``false`` (an interpolated ``${DEBUG:-false}``)."""
        if isinstance(value, str):
            value = _BOOLEANS.get(value.strip().lower(), value)
        if isinstance(value, bool):
            return value
        self.error(path, "must be true or false")
        return None

    def integer(self, path: Path, value: object, low: int, high: int) -> int | None:
        """An integer in ``[low, high]``; the text of one too, as Compose casts it."""
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,10}\s*", value):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.error(path, f"must be an integer from {low} to {high}")
        return None

    def strings(self, path: Path, value: object, *, numbers: bool = False) -> list[str] | None:
        """A list of strings (with ``numbers``, numbers as their text)."""
        if not isinstance(value, list):
            self.error(path, "must be a list of strings")
            return None
        out = [self.text((*path, i), v, numbers=numbers) for i, v in enumerate(value)]
        return [v for v in out if v is not None] if None not in out else None

    def list_or_map(self, path: Path, value: object, sep: str = "=") -> dict[str, str | None]:
        """``environment``/``labels``/``args`` style: a map, or a list of ``K=V`` (``K`` alone
        is a key without a value, ``None``)."""
        out: dict[str, str | None] = {}
        if isinstance(value, dict):
            for key, item in value.items():
                child = (*path, str(key))
                if item is None:
                    out[str(key)] = None
                elif isinstance(item, bool):
                    out[str(key)] = "true" if item else "false"
                else:
                    text = self.text(child, item, numbers=True)
                    if text is not None:
                        out[str(key)] = text
            return out
        if isinstance(value, list):
            for i, item in enumerate(value):
                text = self.text((*path, i), item)
                if text is None:
                    continue
                key, has, rest = text.partition(sep)
                if key in out:
                    self.error((*path, i), f"{key!r} is given twice")
                out[key] = rest if has else None
            return out
        self.error(path, "must be a mapping or a list of KEY=VALUE strings")
        return out
