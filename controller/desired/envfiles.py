"""``spec.envFrom``: dotenv files of the repository, read at the commit, as an app's variables.

Pure: the reconciler reads each file at the revision (or on disk for ``--worktree``) and hands
its bytes here (`parse_env_file`, the one place that turns a file into values, so a decrypt
step for an encrypted file slots in before it). The values reach the containers as plain
variables (as compose's ``env_file`` does), below ``spec.env``; the resolved spec (hence the
``trueup.spec`` label, the desired-state cache and the diff) carries only each file's path and
a keyed digest of its values, never the values: a changed file rolls the app and shows as
``envFrom[<file>]`` changed.

A SOPS-encrypted file (by its metadata) is decrypted first (the reconciler's ``RepoSops``) and
its values are secrets: its entry says ``sops: true`` and a diff shows ``(secret changed)``.
A missing, oversized, non-UTF-8, non-dotenv or undecryptable file fails the app that reads it
(a ``SourceError``/``SopsError`` naming the file and line), never another app.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.desired.secrets import SecretStore
from controller.errors import SourceError

if TYPE_CHECKING:
    from controller.manifests.models import App

MAX_ENV_FILE_BYTES = 256 * 1024
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class EnvFile:
    """One env file's variables, in file order (a later line wins over an earlier one)."""

    path: str
    values: Mapping[str, str] = field(repr=False)
    encrypted: bool = False
    """Decrypted from a SOPS file: its values are secrets."""


def parse_env_file(path: str, raw: bytes) -> EnvFile:
    """``KEY=VALUE`` lines (``export`` allowed, ``#`` comments, blank lines, one pair of
    matching quotes stripped; inside double quotes ``\\n``, ``\\"`` and ``\\\\`` are escapes).
    Anything else is a ``SourceError`` naming the line: a bare ``KEY`` (which would take its
    value from the controller's own environment, never read) included."""
    if len(raw) > MAX_ENV_FILE_BYTES:
        raise SourceError(f"env file {path!r} is larger than {MAX_ENV_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"env file {path!r} is not UTF-8 text (byte {exc.start})") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key):
            why = "a variable without '=' is not supported" if not sep else "not KEY=VALUE"
            raise SourceError(f"env file {path!r} line {number}: {why}")
        values[key] = _unquote(value.strip())
    return EnvFile(path, values)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        return re.sub(r"\\([n\"\\])", lambda m: "\n" if m[1] == "n" else m[1], inner)
    if " #" in value:  # an unquoted value ends at an inline comment, as compose reads it
        value = value.split(" #", 1)[0].rstrip()
    return value


def env_from_digest(app: str, env_file: EnvFile, secrets: SecretStore) -> str:
    """The keyed digest of one env file's values for ``app`` (as a secret file's is made)."""
    material = "".join(f"{k}={v}\n" for k, v in env_file.values.items()).encode()
    return secrets.file_digest(app, f"envFrom:{env_file.path}", material)


def resolve_env_from(
    app: App, reads: Mapping[str, EnvFile | str], secrets: SecretStore
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The resolved spec's ``envFrom`` entries (path and digest) and the variables they give,
    merged in order. ``reads`` maps each file to its values or to why it cannot be read;
    raises ``SourceError`` for this app only."""
    entries: list[dict[str, Any]] = []
    merged: dict[str, str] = {}
    for i, item in enumerate(app.spec.env_from):
        found = reads.get(item.file, f"env file {item.file!r} was not read")
        if isinstance(found, str):
            raise SourceError(f"spec.envFrom[{i}].file: {found}")
        entry: dict[str, Any] = {"file": item.file}
        entry["digest"] = env_from_digest(app.name, found, secrets)
        if found.encrypted:
            entry["sops"] = True
        entries.append(entry)
        merged.update(found.values)
    return entries, merged


def diff_env_from(before: Any, after: Any) -> list[tuple[str, str | None, str | None]]:
    """``(field, before, after)`` for each ``envFrom`` file added, removed or changed between
    two resolved specs, the field named ``envFrom[<file>]``; a value or digest is never shown
    (a changed file is ``(values changed)``)."""
    old = {str(i["file"]): i for i in before or () if isinstance(i, dict) and "file" in i}
    new = {str(i["file"]): i for i in after or () if isinstance(i, dict) and "file" in i}
    out: list[tuple[str, str | None, str | None]] = []
    for path in sorted(set(old) | set(new)):
        was, now = old.get(path), new.get(path)
        if was != now:
            changed = (
                "(secret changed)" if now is not None and now.get("sops") else "(values changed)"
            )
            shown_after = None if now is None else path if was is None else changed
            out.append((f"envFrom[{path}]", None if was is None else path, shown_after))
    if not out and list(old) != list(new):  # the same files in another order
        out.append(("envFrom", ", ".join(old), ", ".join(new)))
    return out
