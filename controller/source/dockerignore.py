"""``.dockerignore`` patterns, matched exactly as the docker SDK matches them.

`DockerIgnore` is the SDK's ``docker.utils.build.PatternMatcher`` (and its ``fnmatch``)
rewritten on the standard library, so that tarring a build context out of git (`tree.tar_tree`)
does not need the SDK: only ``controller/runtime`` imports it. ``tests/source/test_dockerignore.py``
checks it against the SDK itself. Pure: patterns and paths in, answers out. A pattern that is
no valid pattern raises `BadPattern` when the matcher is made (the SDK raised ``re.error`` at
the first match).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence


class BadPattern(ValueError):
    """A ``.dockerignore`` pattern that is no valid pattern (``pattern`` as written)."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(reason)
        self.pattern = pattern


class _Pattern:
    """One pattern as the docker SDK's ``Pattern`` reads it: a leading ``!`` re-includes,
    ``.`` and empty parts are dropped and ``..`` eats the part before it; matched without
    regard to case, ``*`` and ``?`` within one path part, ``**`` across parts."""

    def __init__(self, text: str) -> None:
        self.exclusion = text.startswith("!")
        self.dirs = _clean_pattern(text[1:] if self.exclusion else text)
        self.cleaned_pattern = "/".join(self.dirs)
        try:
            self._regex = re.compile(_translate(self.cleaned_pattern.lower()))
        except re.error as exc:
            raise BadPattern(text, str(exc)) from exc

    def match(self, path: str) -> bool:
        return self._regex.match(path.lower()) is not None


class DockerIgnore:
    """``.dockerignore`` patterns as the docker SDK's ``PatternMatcher`` applies them: the
    last pattern that matches a path (or one of its parent folders) decides, and
    ``.dockerignore`` itself is always kept. `BadPattern` for a pattern that cannot match."""

    def __init__(self, patterns: Sequence[str]) -> None:
        kept = [p for p in (_Pattern(text) for text in patterns) if p.dirs]
        self.patterns = [*kept, _Pattern("!.dockerignore")]

    def matches(self, path: str) -> bool:
        """True when ``path`` (relative to the context, ``/``-separated) is excluded."""
        matched = False
        parent = posixpath.dirname(path)
        parent_dirs = _split_path(parent)
        for pattern in self.patterns:
            match = pattern.match(path)
            if not match and parent != "" and len(pattern.dirs) <= len(parent_dirs):
                match = pattern.match("/".join(parent_dirs[: len(pattern.dirs)]))
            if match:
                matched = not pattern.exclusion
        return matched


def _split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


def _clean_pattern(text: str) -> list[str]:
    """The pattern's parts: trimmed, ``.`` and empty parts dropped, ``a/..`` removed."""
    parts = _split_path(text.strip())
    i = 0
    while i < len(parts):
        if parts[i] == "..":
            del parts[i]
            if i > 0:
                del parts[i - 1]
                i -= 1
        else:
            i += 1
    return parts


def _translate(pattern: str) -> str:
    """The regular expression of a pattern, as the docker SDK's ``fnmatch.translate``."""
    i, n = 0, len(pattern)
    out = "^"
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":  # "**/" is "**"
                    i += 1
                out += ".*" if i >= n else "(.*/)?"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            i, out = _bracket(pattern, i, out)
        else:
            out += re.escape(c)
    return f"{out}$"


def _bracket(pattern: str, i: int, out: str) -> tuple[int, str]:
    """A ``[...]`` class starting after the ``[`` at ``i``; an unclosed one is a literal."""
    j, n = i, len(pattern)
    if j < n and pattern[j] == "!":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        j += 1
    if j >= n:
        return i, out + "\\["
    stuff = pattern[i:j].replace("\\", "\\\\")
    if stuff[0] == "!":
        stuff = f"^{stuff[1:]}"
    elif stuff[0] == "^":
        stuff = f"\\{stuff}"
    return j + 1, f"{out}[{stuff}]"
