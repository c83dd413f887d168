"""The host's age identities: ``sops_age_key_file`` (one or more files, each with one
``AGE-SECRET-KEY-1...`` per line, ``#`` comments and blank lines allowed), read at the edge on
every pass so a key added on the host is used without a restart.

A file that cannot be read, or a line that is not an X25519 identity, is recorded (never its
text) and said when a file cannot be decrypted; the identities that could be read still work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.sops.age import AgeError, Identity

MAX_KEY_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Identities:
    """The identities read, the files they came from, and what could not be read."""

    keys: tuple[Identity, ...] = field(default=(), repr=False)
    files: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def missing(self, recipients: Sequence[str]) -> str:
        """Why a file for ``recipients`` cannot be opened when there is no identity."""
        where = ", ".join(self.files) if self.files else "no sops_age_key_file is configured"
        why = f" ({'; '.join(self.problems)})" if self.problems else ""
        return (
            f"the host has no age identity ({where}{why}); the file is encrypted for "
            f"{', '.join(recipients) or 'no age recipient'}"
        )


def parse_identities(text: str, source: str) -> tuple[list[Identity], list[str]]:
    """The identities of a key file's text and the problems of its other lines."""
    keys: list[Identity] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("AGE-SECRET-KEY-PQ-"):
            problems.append(f"{source}:{number}: a post-quantum identity (not supported)")
            continue
        if line.startswith("AGE-PLUGIN-"):
            problems.append(f"{source}:{number}: a plugin identity (not supported)")
            continue
        try:
            keys.append(Identity.parse(line))
        except AgeError:
            problems.append(f"{source}:{number}: not an age identity")
    return keys, problems


def load_identities(paths: Iterable[Path]) -> Identities:
    """Every identity of the key files ``paths``; unreadable files are problems, not errors."""
    keys: list[Identity] = []
    problems: list[str] = []
    files: list[str] = []
    for path in paths:
        files.append(str(path))
        try:
            if path.stat().st_size > MAX_KEY_FILE_BYTES:
                problems.append(f"{path}: larger than 1 MiB")
                continue
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
            continue
        except OSError as exc:
            problems.append(f"cannot read {path}: {exc.strerror or exc}")
            continue
        found, bad = parse_identities(text, str(path))
        keys += found
        problems += bad
    return Identities(tuple(keys), tuple(files), tuple(problems))
