"""Walking a SOPS tree: every value decrypted under its path (the map keys, joined with ``:``
and a trailing ``:``) where the rules say it is encrypted, and the MAC over the values in
document order across all documents, compared with the file's.

Pure. The MAC is SHA-512 over each non-null value's canonical bytes (comments excluded; with
``mac_only_encrypted``, only encrypted values, after a fixed 32-byte start: sha256 of "sops"),
stored as its upper-case hex encrypted under ``lastmodified``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from controller.sops.metadata import Metadata
from controller.sops.values import BadValue, Comment, canonical, decrypt_raw, typed

MAC_ONLY_ENCRYPTED_START = hashlib.sha256(b"sops").digest()


class MacMismatch(ValueError):
    """The file's MAC does not match its values: it was changed after sops wrote it."""


class _Walk:
    def __init__(self, key: bytes, metadata: Metadata) -> None:
        self.key = key
        self.rules = metadata.rules
        self.hash = hashlib.sha512()
        if self.rules.mac_only_encrypted:
            self.hash.update(MAC_ONLY_ENCRYPTED_START)

    def value(self, value: Any, path: list[str]) -> Any:
        if isinstance(value, dict):
            return self.branch(value, path)
        if isinstance(value, list):
            return [self.value(v, path) for v in value]
        if value is None:
            return None
        if isinstance(value, Comment):
            return self.comment(value, path)
        encrypted = self.rules.encrypted(path)
        if encrypted:
            if not isinstance(value, str):
                raise BadValue("a value that should be encrypted is not in the sops format")
            if value != "":
                plain, kind = decrypt_raw(value, self.key, ":".join(path) + ":")
                value = typed(plain, kind)
        if not self.rules.mac_only_encrypted or encrypted:
            self.hash.update(canonical(value))
        return value

    def comment(self, value: Comment, path: list[str]) -> Comment:
        """A comment decrypted when it can be (sops keeps one that does not, as it is)."""
        if not self.rules.encrypted(path):
            return value
        try:
            plain, _ = decrypt_raw(str(value), self.key, ":".join(path) + ":")
        except BadValue:
            return value
        return Comment(plain.decode("utf-8", "surrogateescape"))

    def branch(self, branch: dict[str, Any], path: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in branch.items():
            out[key] = self.value(item, path if isinstance(item, Comment) else [*path, key])
        return out


def decrypt_documents(
    documents: list[dict[str, Any]], key: bytes, metadata: Metadata
) -> list[dict[str, Any]]:
    """Every document decrypted; ``BadValue`` or ``MacMismatch`` when the file was altered."""
    walk = _Walk(key, metadata)
    out = [walk.branch(d, []) for d in documents]
    try:
        mac_plain, _ = decrypt_raw(metadata.mac, key, metadata.lastmodified)
    except BadValue:
        raise MacMismatch("the MAC does not verify (its mac or lastmodified changed)") from None
    computed = walk.hash.hexdigest().upper().encode()
    if not hmac.compare_digest(mac_plain, computed):
        raise MacMismatch("the file's MAC does not match its values (changed after encryption)")
    return out
