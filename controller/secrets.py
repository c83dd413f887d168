"""Host secrets: ``<secrets-dir>/<name>.env`` files of ``KEY=VALUE`` lines, never from git.

Read at the edge (this module does file I/O) into a ``SecretStore`` that the pure ``desired``
stage looks values up in. Values never reach logs, diffs or labels: only their digests do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from controller.errors import SecretError


@dataclass(frozen=True)
class SecretStore:
    """Secret values by secret name and key."""

    values: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str = "(no secrets dir)"

    def get(self, name: str, key: str) -> str:
        """The value of ``key`` in secret ``name``; ``SecretError`` naming what is missing."""
        secret = self.values.get(name)
        if secret is None:
            raise SecretError(f"secret {name!r} not found in {self.source} (expected {name}.env)")
        if key not in secret:
            raise SecretError(f"secret {name!r} has no key {key!r}")
        return secret[key]


def digest(app: str, variable: str, value: str) -> str:
    """A short, app-scoped digest of a secret value: changes when the value changes."""
    material = f"trueup-secret\0{app}\0{variable}\0{value}".encode()
    return "sha256:" + hashlib.sha256(material).hexdigest()[:16]


def parse_env_file(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; ``#`` comments and blank lines are skipped, quotes stripped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_secrets(directory: Path | None) -> SecretStore:
    """Read every ``*.env`` file of ``directory`` (missing or None: an empty store)."""
    if directory is None or not directory.is_dir():
        return SecretStore(source=str(directory) if directory else "(no secrets dir)")
    values = {
        path.stem: parse_env_file(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.env"))
        if path.is_file()
    }
    return SecretStore(values=values, source=str(directory))
