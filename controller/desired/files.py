"""``spec.files`` resolved: what enters an app's spec (digests, never bytes) and, at apply
time, the `FileContent` its containers get.

Pure: the source digests (`source.files.SourceDigest`) and the files read at the revision are
given by the caller (the reconciler, at the I/O edge). A file from git enters the resolved
spec as ``{path, source, digest, mode, owner}`` (the digest covers names, git modes and blob
ids), a secret file as ``{path, secretRef | secretFile, digest, mode, owner}`` with the keyed
digest of ``SecretStore.file_digest``. A single-file ``source`` that is SOPS-encrypted (told by
its content) is a secret file too: ``{path, sopsFile, digest, mode, owner}``, its plaintext
mounted (mode 0400 unless given) and digested keyed, so a re-encryption changes nothing.
An app without ``files`` gets no ``files`` key at all, so its spec hash is what it was before
files existed.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from controller.desired.secrets import SecretStore
from controller.errors import SecretError, SourceError
from controller.runtime.archive import FileContent

if TYPE_CHECKING:
    from controller.manifests.models import App, FileEntry

MAX_FILES_BYTES = 16 * 1024 * 1024


class SourceDigest(Protocol):
    """A git source's digest and size (`source.files.SourceDigest`)."""

    @property
    def folder(self) -> bool: ...
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...


class SourceFile(Protocol):
    """One file of a git source with its bytes (`source.files.SourceFile`)."""

    @property
    def name(self) -> str: ...
    @property
    def executable(self) -> bool: ...
    @property
    def data(self) -> bytes: ...


def secret_bytes(entry: FileEntry, secrets: SecretStore) -> bytes:
    """The content of a secret file entry, read from the store (``SecretError`` when absent)."""
    if entry.secret_ref is not None:
        return secrets.get(entry.secret_ref.secret, entry.secret_ref.key).encode()
    if entry.source is not None:  # a SOPS-encrypted source (see `resolve_files`)
        return secrets.repo_sops().decrypted(entry.source).plaintext
    assert entry.secret_file is not None
    return secrets.file(entry.secret_file)


def _sops_plaintext(found: SourceDigest, source: str, secrets: SecretStore) -> bytes | None:
    """The plaintext of a single-file source that is a SOPS file; None for a plain file."""
    if found.folder or secrets.sops is None:
        return None
    decrypted = secrets.sops.encrypted(source)
    return None if decrypted is None else decrypted.plaintext


def secret_mode(entry: FileEntry, secret_files: Mapping[str, bytes]) -> int:
    """The mode of ``entry`` in force: a SOPS source follows the secret-file rule (0400)."""
    if entry.mode is None and entry.source is not None and entry.path in secret_files:
        return 0o400
    return entry.effective_mode()


def resolve_files(
    app: App, sources: Mapping[str, SourceDigest | str], secrets: SecretStore
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The resolved spec's ``files`` entries and the secret files' bytes by path.

    ``sources`` maps each git source to its digest, or to why it cannot be read. Raises
    ``SourceError`` / ``SecretError`` (for this app only); the total size is capped at 16 MiB."""
    entries: list[dict[str, Any]] = []
    secret_files: dict[str, bytes] = {}
    total = 0
    for i, entry in enumerate(app.spec.files):
        item: dict[str, Any] = {"path": entry.path, "mode": f"{entry.effective_mode():04o}"}
        item["owner"] = "{}:{}".format(*entry.uid_gid())
        if entry.source is not None:
            found = sources.get(entry.source, f"file source {entry.source!r} was not read")
            if isinstance(found, str):
                raise SourceError(f"spec.files[{i}].source: {found}")
            try:
                plain = _sops_plaintext(found, entry.source, secrets)
            except (SecretError, SourceError) as exc:
                raise SecretError(f"spec.files[{i}].source: {exc}") from None
            if plain is not None:
                secret_files[entry.path] = plain
                item["mode"] = f"{secret_mode(entry, secret_files):04o}"
                item["sopsFile"] = entry.source
                item["digest"] = secrets.file_digest(app.name, entry.path, plain)
                total += len(plain)
            else:
                item["source"], item["digest"] = entry.source, found.digest
                total += found.size
        elif entry.content is not None:
            data = entry.content.encode()
            item["content"] = "inline"
            item["digest"] = "sha256:" + hashlib.sha256(data).hexdigest()
            total += len(data)
        else:
            try:
                value = secret_bytes(entry, secrets)
            except SecretError as exc:
                raise SecretError(f"spec.files[{i}]: {exc}") from None
            secret_files[entry.path] = value
            if entry.secret_ref is not None:
                item["secretRef"] = f"{entry.secret_ref.name}/{entry.secret_ref.key}"
            else:
                item["secretFile"] = entry.secret_file
            item["digest"] = secrets.file_digest(app.name, entry.path, value)
            total += len(value)
        entries.append(item)
    if total > MAX_FILES_BYTES:
        raise SourceError(
            f"spec.files: {total} bytes in all, more than the 16 MiB an app may carry"
        )
    return entries, secret_files


def file_contents(
    app: App, reads: Mapping[str, Sequence[SourceFile]], secret_files: Mapping[str, bytes]
) -> tuple[FileContent, ...]:
    """Every file ``app``'s containers get: git sources from ``reads`` (a folder's files below
    its path), secret files from ``secret_files``, each with its mode and owner."""
    out: list[FileContent] = []
    for entry in app.spec.files:
        mode = secret_mode(entry, secret_files)
        uid, gid = entry.uid_gid()
        if entry.content is not None:
            out.append(FileContent(entry.path, mode, uid, gid, entry.content.encode()))
            continue
        if entry.source is None or entry.path in secret_files:
            out.append(FileContent(entry.path, mode, uid, gid, secret_files[entry.path]))
            continue
        for part in reads[entry.source]:
            path = posixpath.join(entry.path, part.name) if part.name else entry.path
            bits = mode | ((mode & 0o444) >> 2) if part.executable else mode
            out.append(FileContent(path, bits, uid, gid, part.data))
    return tuple(out)


def _shown(item: Mapping[str, Any] | None) -> str | None:
    """How a diff shows one resolved ``files`` entry: its source and short digest, mode and
    owner; a secret file never shows a digest."""
    if item is None:
        return None
    origins = ("source", "secretRef", "secretFile", "sopsFile")
    where = next((item[k] for k in origins if item.get(k)), None)
    where = where or ("(inline content)" if "content" in item else None)
    plain = "source" in item or "content" in item
    digest = f"@{str(item.get('digest'))[:19]}" if plain else ""
    return f"{where}{digest} mode {item.get('mode')} owner {item.get('owner')}"


def diff_files(before: Any, after: Any) -> list[tuple[str, str | None, str | None]]:
    """``(field, before, after)`` for each ``files`` entry that differs between two resolved
    specs, the field named ``files[<path>]``; a changed secret file shows ``(secret changed)``."""
    old = {i["path"]: i for i in before or () if isinstance(i, dict) and "path" in i}
    new = {i["path"]: i for i in after or () if isinstance(i, dict) and "path" in i}
    out: list[tuple[str, str | None, str | None]] = []
    for path in sorted(set(old) | set(new)):
        was, now = old.get(path), new.get(path)
        if was == now:
            continue
        shown_after = _shown(now)
        secret = "source" not in now and "content" not in now if now is not None else False
        if was is not None and now is not None and secret and _same(was, now):
            shown_after = "(secret changed)"
        out.append((f"files[{path}]", _shown(was), shown_after))
    return out


def _same(was: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """True when two entries differ in their digest only."""
    return {k: v for k, v in was.items() if k != "digest"} == {
        k: v for k, v in now.items() if k != "digest"
    }
