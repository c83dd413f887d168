"""``spec.files`` sources: a file or folder of the deployment repository, at a commit or on disk.

``digest_tree`` answers what the desired stage needs on every pass (a digest over names, git
modes and blob ids, and the total size) without reading a blob when its size is in the object
header; ``read_tree`` reads the contents for the apply stage. A symlink is followed only while
it stays inside the deployment root; one that leaves it, dangles or loops is a ``SourceError``
for the app. Submodules are skipped. The worktree functions (``diff --worktree``) give the same
digest for the same content: blob ids are computed as git does.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from dulwich.object_store import BaseObjectStore
from dulwich.objects import ObjectID

from controller.errors import SourceError
from controller.source.tree import S_IFGITLINK, _blob, blob_size, join, lookup, walk

_MAX_HOPS = 8


@dataclass(frozen=True)
class SourceDigest:
    """What a ``source`` is, without its bytes: ``folder``, its digest and total size."""

    folder: bool
    digest: str
    size: int


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: its name relative to the source ("" for a single file), whether
    git marks it executable, and its bytes."""

    name: str
    executable: bool
    data: bytes


def _resolve(
    store: BaseObjectStore, root: ObjectID, rel: str, source: str
) -> tuple[int, ObjectID, str]:
    """(mode, id, path) of ``rel`` under ``root`` with its symlinks followed inside ``root``."""
    for _ in range(_MAX_HOPS):
        found = lookup(store, root, rel)
        if found is None:
            raise SourceError(f"file source {source!r} does not exist at this commit")
        mode, oid = found
        if not stat.S_ISLNK(mode):
            return mode, oid, rel
        target = _blob(store, oid).decode("utf-8", "surrogateescape")
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        if target.startswith("/") or rel == ".." or rel.startswith("../"):
            raise SourceError(f"file source {source!r}: a symlink leads out of the repository")
    raise SourceError(f"file source {source!r}: too many symlinks")


def _entries(
    store: BaseObjectStore, root: ObjectID, source: str
) -> tuple[bool, list[tuple[str, int, ObjectID]]]:
    """Whether ``source`` is a folder, and its files as (name, git mode, blob id), sorted."""
    mode, oid, rel = _resolve(store, root, source, source)
    if stat.S_ISREG(mode):
        return False, [("", mode, oid)]
    if not stat.S_ISDIR(mode):
        raise SourceError(f"file source {source!r} is neither a file nor a folder")
    out: list[tuple[str, int, ObjectID]] = []
    for name, entry_mode, entry_oid in walk(store, oid):
        if stat.S_ISDIR(entry_mode) or entry_mode == S_IFGITLINK:
            continue
        if stat.S_ISLNK(entry_mode):
            entry_mode, entry_oid, _ = _resolve(store, root, join(rel, name), source)
            if not stat.S_ISREG(entry_mode):
                raise SourceError(f"file source {source!r}: {name} is a link to a folder")
        out.append((name, entry_mode, entry_oid))
    return True, sorted(out)


def _digest(folder: bool, entries: list[tuple[str, bool, str]]) -> str:
    lines = [f"{name}\0{int(executable)}\0{blob}\n" for name, executable, blob in entries]
    material = ("folder\n" if folder else "file\n") + "".join(lines)
    return "sha256:" + hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


def digest_tree(store: BaseObjectStore, root: ObjectID, source: str) -> SourceDigest:
    """``source``'s digest and total size at the commit whose deployment root is ``root``."""
    folder, entries = _entries(store, root, source)
    size = 0
    for _, _, oid in entries:
        known = blob_size(store, oid)
        size += known if known is not None else len(_blob(store, oid))
    keyed = [(name, bool(mode & 0o111), oid.decode()) for name, mode, oid in entries]
    return SourceDigest(folder, _digest(folder, keyed), size)


def read_tree(store: BaseObjectStore, root: ObjectID, source: str) -> list[SourceFile]:
    """Every file of ``source`` with its bytes."""
    _, entries = _entries(store, root, source)
    return [SourceFile(name, bool(mode & 0o111), _blob(store, oid)) for name, mode, oid in entries]


def _disk_files(root: Path, source: str) -> tuple[bool, list[SourceFile]]:
    real_root = root.resolve()
    start = (root / source).resolve()
    if start != real_root and real_root not in start.parents:
        raise SourceError(f"file source {source!r}: a symlink leads out of the repository")
    if start.is_file():
        return False, [SourceFile("", os.access(start, os.X_OK), start.read_bytes())]
    if not start.is_dir():
        raise SourceError(f"file source {source!r} does not exist in the working tree")
    out = []
    for path in sorted(start.rglob("*")):
        real = path.resolve()
        if real_root not in real.parents:
            raise SourceError(f"file source {source!r}: a symlink leads out of the repository")
        if ".git" in path.relative_to(start).parts or not real.is_file():
            continue
        name = path.relative_to(start).as_posix()
        out.append(SourceFile(name, bool(real.stat().st_mode & 0o111), real.read_bytes()))
    return True, out


def digest_disk(root: Path, source: str) -> SourceDigest:
    """As `digest_tree`, for the files on disk under ``root`` (``diff --worktree``)."""
    folder, files = _disk_files(root, source)
    keyed = [(f.name, f.executable, _blob_id(f.data)) for f in files]
    return SourceDigest(folder, _digest(folder, keyed), sum(len(f.data) for f in files))


def read_disk(root: Path, source: str) -> list[SourceFile]:
    """As `read_tree`, for the files on disk."""
    return _disk_files(root, source)[1]


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
