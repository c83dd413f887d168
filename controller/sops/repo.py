"""The SOPS files of the repository at one revision, as one pass sees them: read through the
caller's ``read`` (git at the revision, or the working tree) and decrypted on first use.

One `RepoSops` lives for one pass (it hangs off that pass's `SecretStore`), so decrypted
values stay in memory for that pass only: nothing is written or kept across passes. The
host's identity files are read on the pass's first decryption (a key added on the host is
used from the next pass on). A file that cannot be read or decrypted is remembered as its
error, so every app using it fails with the same located message and no other app does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from controller.errors import SopsError, SourceError, TrueupError
from controller.sops import MAX_SOPS_FILE_BYTES, looks_encrypted

if TYPE_CHECKING:
    from controller.sops.decrypt import Decrypted
    from controller.sops.identities import Identities


class _Part(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def data(self) -> bytes: ...


def single_file(parts: Sequence[_Part], file: str) -> bytes:
    """The bytes of a source read as ``parts`` (`source.files.read_tree`) that must be one
    file of at most 16 MiB; ``SourceError`` for a folder or a larger file."""
    if len(parts) != 1 or parts[0].name:
        raise SourceError(f"{file!r} is a folder, not a file")
    if len(parts[0].data) > MAX_SOPS_FILE_BYTES:
        raise SourceError(f"{file!r} is larger than 16 MiB")
    return parts[0].data


Reader = Callable[[str], bytes]
"""A repository path → the file's bytes (``SourceError`` when it is missing or a folder)."""


class RepoSops:
    """Decrypts the repository's SOPS files with the host's ``identities``, each once."""

    def __init__(self, read: Reader, key_files: Sequence[Path] | Identities) -> None:
        self._read = read
        self._key_files = key_files
        self._identities: Identities | None = None
        self._lock = threading.Lock()
        self._seen: dict[str, Decrypted | TrueupError | None] = {}

    @property
    def identities(self) -> Identities:
        """The host's identities, read on first use."""
        if self._identities is None:  # imported here: a pass that decrypts nothing never loads it
            from controller.sops.identities import Identities, load_identities

            given = self._key_files
            self._identities = given if isinstance(given, Identities) else load_identities(given)
        return self._identities

    def _load(self, file: str) -> Decrypted | TrueupError | None:
        with self._lock:
            if file in self._seen:
                return self._seen[file]
        found: Decrypted | TrueupError | None = None
        try:
            raw = self._read(file)
            if looks_encrypted(raw):
                from controller.sops.decrypt import decrypt_file

                found = decrypt_file(raw, file=file, identities=self.identities)
        except TrueupError as exc:
            found = exc
        with self._lock:
            self._seen[file] = found
        return found

    def decrypted(self, file: str) -> Decrypted:
        """``file`` decrypted; ``SopsError`` (or the ``SourceError`` of reading it) when it
        cannot be, and when it is not SOPS-encrypted (a secret in git must be)."""
        found = self._load(file)
        if isinstance(found, TrueupError):
            raise found
        if found is None:
            raise SopsError("is not SOPS-encrypted (a secret in git must be)", file=file)
        return found

    def encrypted(self, file: str) -> Decrypted | None:
        """``file`` decrypted when it is a SOPS file, None when it is a plain file."""
        found = self._load(file)
        if isinstance(found, TrueupError):
            raise found
        return found

    def is_encrypted(self, file: str) -> bool:
        """True when ``file`` is a SOPS file (by its ``ENC[`` values, not its name), also one
        that cannot be decrypted; False for a plain file and one that cannot be read."""
        try:
            return looks_encrypted(self._read(file))
        except TrueupError:
            return False

    def plaintext(self, file: str) -> bytes:
        """``file`` as an app should read it: decrypted when it is a SOPS file, else its bytes
        as committed. The call for any reader of repository files that may be encrypted (an
        ``env_file``, a compose ``secrets: {x: {file: ...}}``, a committed ``.env``): it raises
        the located ``SopsError`` of a file that cannot be decrypted."""
        decrypted = self.encrypted(file)
        return decrypted.plaintext if decrypted is not None else self._read(file)

    def checked(self) -> dict[str, str | None]:
        """Every file looked at so far: None when it decrypted (or is plain), else why not."""
        with self._lock:
            return {
                f: (str(v) if isinstance(v, TrueupError) else None) for f, v in self._seen.items()
            }
