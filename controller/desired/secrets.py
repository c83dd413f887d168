"""Host secrets: ``<secrets-dir>/<name>.env`` files of ``KEY=VALUE`` lines, never from git;
and, through ``sops`` (`controller.sops.repo.RepoSops`), the SOPS-encrypted files of the
repository, decrypted with the host's age identities (a secret named ``file:<path>``).

Read at the edge (this module does file I/O) into a ``SecretStore`` that the pure ``desired``
stage looks values up in. Values never reach logs, diffs or labels: only their digests do.

A digest is an HMAC-SHA256 keyed per instance (``<state-dir>/secret-digest.key``, 32 random
bytes made on first use, mode 0600), so a digest on a container label cannot be checked
against guessed values by whoever can ``docker inspect``. A ``*.env`` file that cannot be read
(not UTF-8, unreadable) fails the apps that read it, naming the file, and no other app.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from controller.errors import ConfigError, SecretError

if TYPE_CHECKING:
    from controller.sops.repo import RepoSops

KEY_FILE = "secret-digest.key"
MAX_SECRET_FILE_BYTES = 16 * 1024 * 1024
_PROCESS_KEY = os.urandom(32)
"""The key of a store made without one (tests, library use): digests stay comparable within
the process and are never stable across processes, so a forgotten key rolls, never leaks."""


@dataclass(frozen=True)
class SecretStore:
    """Secret values by secret name and key, the files that could not be read, and the key
    digests are made with."""

    values: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    source: str = "(no secrets dir)"
    unreadable: dict[str, str] = field(default_factory=dict)
    """Secret name (``file:<name>`` for a whole file) → why its file could not be read."""
    digest_key: bytes = field(default=_PROCESS_KEY, repr=False)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Whole files of the secrets dir other than ``*.env`` (``secretFile``), by file name."""
    sops: RepoSops | None = field(default=None, repr=False, compare=False)
    """The repository's SOPS files at the pass's revision (None: no repository to read)."""

    def get(self, name: str, key: str) -> str:
        """The value of ``key`` in secret ``name`` (``file:<path>``: in that SOPS file of the
        repository); ``SecretError`` naming what is missing."""
        if name.startswith("file:"):
            return self.repo_sops().decrypted(name[len("file:") :]).value(key)
        if name in self.unreadable:
            raise SecretError(f"secret {name!r}: {self.unreadable[name]}")
        secret = self.values.get(name)
        if secret is None:
            raise SecretError(f"secret {name!r} not found in {self.source} (expected {name}.env)")
        if key not in secret:
            raise SecretError(f"secret {name!r} has no key {key!r}")
        return secret[key]

    def repo_sops(self) -> RepoSops:
        """The repository's SOPS files; ``SecretError`` when this store has none."""
        if self.sops is None:
            raise SecretError("SOPS files of the repository cannot be read here")
        return self.sops

    def file(self, name: str) -> bytes:
        """The content of ``<secrets-dir>/<name>``; ``SecretError`` when it is not there."""
        if f"file:{name}" in self.unreadable:
            raise SecretError(f"secret file {name!r}: {self.unreadable[f'file:{name}']}")
        if name not in self.files:
            raise SecretError(f"secret file {name!r} not found in {self.source}")
        return self.files[name]

    def file_digest(self, app: str, path: str, value: bytes) -> str:
        """The keyed digest of a secret file's content at ``path`` in ``app``'s containers."""
        material = f"trueup-secret-file\0{app}\0{path}\0".encode() + value
        return "hmac-sha256:" + hmac.new(self.digest_key, material, hashlib.sha256).hexdigest()[:16]

    def digest(self, app: str, variable: str, value: str) -> str:
        """The digest of ``value`` as labels and the desired-state cache carry it."""
        return digest(self.digest_key, app, variable, value)


def digest(key: bytes, app: str, variable: str, value: str) -> str:
    """A short, app-scoped, keyed digest of a secret value: changes when the value changes,
    and cannot be recomputed without ``key``."""
    material = f"trueup-secret\0{app}\0{variable}\0{value}".encode()
    return "hmac-sha256:" + hmac.new(key, material, hashlib.sha256).hexdigest()[:16]


def load_digest_key(state_dir: Path) -> bytes:
    """The instance's digest key from ``state_dir``, made (0600, atomically) when missing.

    ``ConfigError`` when it cannot be made or read: a new key would replace every app that
    reads a secret, so a damaged key is reported, never silently replaced."""
    path = state_dir / KEY_FILE
    if not path.exists():
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{KEY_FILE}.")  # mode 0600
            try:
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(os.urandom(32).hex() + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                with contextlib.suppress(FileExistsError):  # another process made one first
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise ConfigError(f"cannot create the secret digest key {path}: {exc}") from exc
    try:
        with path.open("r", encoding="ascii") as f:
            if stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077:
                os.fchmod(f.fileno(), 0o600)
            text = f.read(200).strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the secret digest key {path}: {exc}") from exc
    if len(key) < 16:
        raise ConfigError(f"the secret digest key {path} is too short (64 hex digits expected)")
    return key


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


def load_secrets(directory: Path | None, *, digest_key: bytes | None = None) -> SecretStore:
    """Read every ``*.env`` file of ``directory`` (missing or None: an empty store); a file
    that cannot be read is recorded in ``unreadable`` (see ``SecretStore.get``)."""
    key = digest_key if digest_key is not None else _PROCESS_KEY
    if directory is None or not directory.is_dir():
        source = str(directory) if directory else "(no secrets dir)"
        return SecretStore(source=source, digest_key=key)
    values: dict[str, dict[str, str]] = {}
    unreadable: dict[str, str] = {}
    files = _whole_files(directory, unreadable)
    for path in sorted(directory.glob("*.env")):
        if not path.is_file():
            continue
        try:
            values[path.stem] = parse_env_file(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as exc:
            unreadable[path.stem] = f"{path} is not UTF-8 text (byte {exc.start})"
        except OSError as exc:
            unreadable[path.stem] = f"cannot read {path}: {exc.strerror or exc}"
    return SecretStore(
        values=values, source=str(directory), unreadable=unreadable, digest_key=key, files=files
    )


def _whole_files(directory: Path, unreadable: dict[str, str]) -> dict[str, bytes]:
    """Every regular file of ``directory`` that is not ``*.env`` nor hidden, by name (for
    ``secretFile``); one over 16 MiB or unreadable is recorded in ``unreadable``."""
    files: dict[str, bytes] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix == ".env" or path.name.startswith(".") or not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_SECRET_FILE_BYTES:
                unreadable[f"file:{path.name}"] = f"{path} is larger than 16 MiB"
                continue
            files[path.name] = path.read_bytes()
        except OSError as exc:
            unreadable[f"file:{path.name}"] = f"cannot read {path}: {exc.strerror or exc}"
    return files
