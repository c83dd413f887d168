"""The decryptor's entry points (`controller.sops` names them): `decrypt_file` (bytes and the
host's identities in, a `Decrypted` out, or a located `SopsError`) and `inspect_file` (what can
be checked without a key). Imported on first use only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.errors import SopsError
from controller.sops import MAX_SOPS_FILE_BYTES
from controller.sops.formats import Format, FormatError, Parsed, emit, parse
from controller.sops.identities import Identities
from controller.sops.metadata import MetadataError, data_key, read_metadata
from controller.sops.tree import MacMismatch, decrypt_documents
from controller.sops.values import BadValue, go_float


@dataclass(frozen=True)
class Decrypted:
    """A decrypted SOPS file: ``plaintext`` in its own format (what ``sops decrypt`` prints,
    up to YAML/JSON layout and YAML comments) and its top-level values by key."""

    file: str
    format: Format
    recipients: tuple[str, ...]
    plaintext: bytes = field(repr=False)
    documents: tuple[dict[str, Any], ...] = field(repr=False)

    def value(self, key: str) -> str:
        """The value of ``key`` as text (top-level key of a dotenv, JSON or YAML file, the first
        document that has it; ``a.b`` for nested maps; ``data`` for a binary file)."""
        for document in self.documents:
            found = _lookup(document, key)
            if found is not _MISSING:
                if isinstance(found, dict | list):
                    raise SopsError(f"{key!r} is not a single value", file=self.file)
                return _text(found)
        raise SopsError(f"has no key {key!r}", file=self.file)


_MISSING = object()


def _lookup(document: dict[str, Any], key: str) -> Any:
    if key in document:
        return document[key]
    node: Any = document
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def _parse(raw: bytes, *, file: str) -> Parsed:
    """``raw`` parsed in its format, with its sops metadata; ``SopsError`` when it cannot be
    read or has encrypted values but no metadata."""
    try:
        parsed = parse(raw, file)
    except FormatError as exc:
        raise SopsError(f"not a readable SOPS file ({exc})", file=file) from None
    if parsed is None:
        raise SopsError(
            "has encrypted values but no sops metadata (a removed or damaged sops block)",
            file=file,
        )
    return parsed


def _inspect(raw: bytes, *, file: str) -> tuple[str, ...]:
    parsed = _parse(raw, file=file)
    try:
        return read_metadata(parsed.metadata).recipients
    except MetadataError as exc:
        raise SopsError(str(exc), file=file) from None


def decrypt_file(raw: bytes, *, file: str, identities: Identities) -> Decrypted:
    """The plaintext of the SOPS file ``raw`` (repository path ``file``), decrypted with
    ``identities``; ``SopsError`` (naming ``file`` and why) when it cannot be, whatever the
    bytes: a committer may write anything, and it must never be more than that file's error."""
    try:
        return _decrypt(raw, file=file, identities=identities)
    except SopsError:
        raise
    except Exception as exc:  # hostile input that slipped past a check: this file only
        raise SopsError(f"not a readable SOPS file ({type(exc).__name__})", file=file) from None


def inspect_file(raw: bytes, *, file: str) -> tuple[str, ...]:
    """The age recipients of the SOPS file ``raw``, checked as far as possible without a key
    (readable, metadata trueup supports); ``SopsError`` as `decrypt_file` raises it."""
    try:
        return _inspect(raw, file=file)
    except SopsError:
        raise
    except Exception as exc:  # as in decrypt_file
        raise SopsError(f"not a readable SOPS file ({type(exc).__name__})", file=file) from None


def _decrypt(raw: bytes, *, file: str, identities: Identities) -> Decrypted:
    if len(raw) > MAX_SOPS_FILE_BYTES:
        raise SopsError("larger than 16 MiB", file=file)
    parsed = _parse(raw, file=file)
    try:
        metadata = read_metadata(parsed.metadata)
        if not identities.keys:
            raise MetadataError(identities.missing(metadata.recipients))
        key = data_key(metadata, identities.keys)
    except MetadataError as exc:
        raise SopsError(str(exc), file=file) from None
    try:
        documents = decrypt_documents(parsed.documents, key, metadata)
    except MacMismatch as exc:
        raise SopsError(str(exc), file=file) from None
    except BadValue as exc:
        raise SopsError(f"refused: {exc}", file=file) from None
    return Decrypted(
        file=file,
        format=parsed.format,
        recipients=metadata.recipients,
        plaintext=emit(parsed.format, documents),
        documents=tuple(documents),
    )
