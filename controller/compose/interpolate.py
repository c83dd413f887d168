"""Compose interpolation: ``${V}``, ``$V``, ``${V:-d}``, ``${V-d}``, ``${V:?msg}``,
``${V?msg}``, ``${V:+x}``, ``${V+x}`` and ``$$``, applied to every string value of a compose
document (never to keys, as Compose does), and the committed ``.env`` format.

Values come from a lookup the caller builds (the host's variables file over the committed
``.env``), never from the process environment. An unset variable without a default is an
error, not an empty string. Defaults may nest (``${A:-${B:-x}}``). The text produced is
bounded (``MAX_CHARS``), so a short file cannot expand into gigabytes through a long value.

Secret variables (those of a SOPS-encrypted ``.env``) never reach the translated spec: the
whole value of a service's ``environment`` entry (``KEY: ${V}``, ``- KEY=${V}``) that is one
secret variable is recorded in ``secret_refs`` (the translation makes it a ``secretRef`` to
the encrypted file) and left empty; any other use of one is an error at its place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from controller.manifests.yamlmarks import Path

MAX_CHARS = 4 * 1024 * 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:[=:]\s*(.*))?$")


class InterpolationError(ValueError):
    """A variable that is unset (or ``${V:?msg}``), or a ``${`` that is not closed."""


@dataclass
class Interpolator:
    """Substitutes variables from ``values``; counts the text it makes against ``MAX_CHARS``."""

    values: Mapping[str, str]
    produced: int = 0
    used: set[str] = field(default_factory=set)
    secret: Mapping[str, str] = field(default_factory=dict)
    """Secret variable → the encrypted file that holds it."""
    secret_refs: dict[Path, tuple[str, str]] = field(default_factory=dict)
    secret_used: set[str] = field(default_factory=set)

    def substitute(self, text: str) -> str:
        out, pos = self._scan(text, 0, stop=None)
        assert pos == len(text)
        self.produced += len(out)
        if self.produced > MAX_CHARS:
            raise InterpolationError(
                f"interpolation makes more than {MAX_CHARS // 1024 // 1024} MiB of text"
            )
        return out

    def _scan(self, text: str, pos: int, stop: str | None) -> tuple[str, int]:
        """Expand from ``pos`` until the end, or until an unnested ``stop`` character."""
        parts: list[str] = []
        while pos < len(text):
            ch = text[pos]
            if stop is not None and ch == stop:
                return "".join(parts), pos
            if ch != "$":
                parts.append(ch)
                pos += 1
                continue
            value, pos = self._dollar(text, pos)
            parts.append(value)
        if stop is not None:
            raise InterpolationError(f"unterminated '${{' in {text!r}")
        return "".join(parts), pos

    def _dollar(self, text: str, pos: int) -> tuple[str, int]:
        nxt = text[pos + 1 : pos + 2]
        if nxt == "$":
            return "$", pos + 2
        if nxt == "{":
            return self._braced(text, pos + 2)
        match = _NAME.match(text, pos + 1)
        if match is None:  # as Compose: a '$' that starts no variable stays itself
            return "$", pos + 1
        return self._require(match.group(0)), match.end()

    def _braced(self, text: str, pos: int) -> tuple[str, int]:
        match = _NAME.match(text, pos)
        if match is None:
            raise InterpolationError(f"invalid interpolation in {text!r}: '${{' needs a name")
        name, pos = match.group(0), match.end()
        if pos == len(text):
            raise InterpolationError(f"unterminated '${{' in {text!r}")
        if text[pos : pos + 1] == "}":
            return self._require(name), pos + 1
        op = ""
        for candidate in (":-", ":?", ":+", "-", "?", "+"):
            if text.startswith(candidate, pos):
                op = candidate
                break
        if not op:
            raise InterpolationError(
                f"invalid interpolation in {text!r}: after ${{{name} comes '}}', ':-', '-', "
                "':?', '?', ':+' or '+'"
            )
        arg, end = self._scan(text, pos + len(op), stop="}")
        self.used.add(name)
        if name in self.secret:
            self.secret_used.add(name)
        value = self.values.get(name)
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op in (":-", "-"):
            return (arg if unset_or_empty else str(value)), end + 1
        if op in (":+", "+"):
            return ("" if unset_or_empty else arg), end + 1
        if unset_or_empty:
            reason = arg or f"variable {name} is required"
            raise InterpolationError(f"${{{name}}}: {reason}")
        return str(value), end + 1

    def _require(self, name: str) -> str:
        self.used.add(name)
        if name in self.secret:
            self.secret_used.add(name)
        value = self.values.get(name)
        if value is None:
            raise InterpolationError(
                f"variable {name} is not set (in neither the committed .env nor the host's "
                f"variables file); give it a value or a default: ${{{name}:-default}}"
            )
        return value


def interpolate(
    data: object,
    interpolator: Interpolator,
    report: Callable[[Path, str], None],
    path: Path = (),
) -> object:
    """``data`` with every string value (not key) interpolated; each failure is reported at
    its path and its value left as it was (so checks after it still run)."""
    if isinstance(data, dict):
        return {k: interpolate(v, interpolator, report, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, interpolator, report, (*path, i)) for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:
        interpolator.secret_used.clear()
        try:
            out = interpolator.substitute(data)
        except InterpolationError as exc:
            report(path, str(exc))
            return data
        if interpolator.secret_used:
            return _secret_use(data, interpolator, report, path)
        return out
    return data


_WHOLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _secret_use(
    text: str, interpolator: Interpolator, report: Callable[[Path, str], None], path: Path
) -> str:
    """A string that used a secret variable: recorded when it is a whole environment value
    (left empty here), else an error; the secret's value is never returned."""
    names = sorted(interpolator.secret_used)
    environment = len(path) == 4 and path[0] == "services" and path[2] == "environment"
    key, value = str(path[3]) if environment else "", text
    if environment and isinstance(path[3], int):
        key, _, value = text.partition("=")
    whole = _WHOLE.fullmatch(value)
    name = str(whole.group(1) or whole.group(2)) if whole else ""
    if environment and key and interpolator.secret.get(name):
        file = interpolator.secret[name]
        interpolator.secret_refs[(*path[:3], key)] = (file, name)
        return f"{key}=" if isinstance(path[3], int) else ""
    report(path, secret_misuse(names[0], interpolator.secret[names[0]]))
    return ""


def secret_misuse(name: str, file: str) -> str:
    """Why secret variable ``name`` (of encrypted ``file``; "": one sops reads otherwise than
    Compose) cannot be used where it is."""
    if not file:
        return (
            f"variable {name} of the encrypted .env is quoted, escaped, interpolated or followed "
            "by a comment there, which sops reads literally: write it as KEY=value"
        )
    return (
        f"variable {name} comes from an encrypted file ({file}): it may only be the whole "
        f"value of an environment variable (KEY: ${{{name}}})"
    )


def parse_dotenv(
    text: str, host: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """The variables of a ``.env`` file and its bad lines (line number, message).

    ``KEY=VALUE`` per line; ``#`` starts a comment (on an unquoted value, after a space);
    ``export`` is allowed; single quotes are literal, double quotes take ``\\n``, ``\\t``,
    ``\\"`` and ``\\\\`` escapes. Unquoted and double-quoted values are interpolated, as
    Compose does, from the lines above and ``host`` (which wins); an unset variable there
    is a bad line, not an empty string."""
    values: dict[str, str] = {}
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if match is None:
            bad.append((number, "not a KEY=VALUE line"))
            continue
        key, raw = match.group(1), (match.group(2) or "").strip()
        try:
            value = _dotenv_value(raw)
            if raw[:1] != "'" and "$" in value:
                value = Interpolator({**values, **(host or {})}).substitute(value)
        except ValueError as exc:
            bad.append((number, f"{key}: {exc}"))
            continue
        values[key] = value
    return values, bad


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def _dotenv_value(raw: str) -> str:
    if raw[:1] == "'":
        end = raw.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        return raw[1:end]
    if raw[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                out.append(_ESCAPES.get(raw[i + 1], "\\" + raw[i + 1]))
                i += 2
                continue
            if ch == '"':
                return "".join(out)
            out.append(ch)
            i += 1
        raise ValueError("unterminated double quote")
    comment = re.search(r"\s#", raw)
    return (raw[: comment.start()] if comment else raw).strip()
