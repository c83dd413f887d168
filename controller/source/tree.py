"""Read files and tar folders out of git trees, without ever writing a working tree.

Pure functions over a dulwich object store (``MemoryObjectStore`` in unit tests, a repository's
store in production); ``GitSource`` in ``git.py`` is the only caller. Paths that come from
users (``--path``, ``build.context``) are checked by :func:`clean_subpath` before they get here.

Tar rules (what ``docker build`` would get from a checkout of the same tree):
regular files keep their executable bit (0644 / 0755), symlinks are stored as symlinks with
their target (never followed), directories are 0755, a submodule is an empty directory, and
``.dockerignore`` is applied as the docker SDK applies it (`dockerignore.DockerIgnore`),
walking the tree the way the SDK walks a folder. A pattern that cannot be matched (``[z-a]``)
is a `SourceError` naming its line, for the apps built from that context only. Every entry
has mtime 0 and owner 0:0, so the tar is a pure function of the tree id and the Dockerfile
name.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import structlog
from dulwich.object_store import BaseObjectStore, DiskObjectStore
from dulwich.objects import Blob, ObjectID, Tree

from controller.errors import SourceError
from controller.manifests.discovery import DOTENV, is_compose_file
from controller.source.dockerignore import BadPattern, DockerIgnore

if TYPE_CHECKING:  # imported by tar_tree: reading manifests never loads tarfile
    import tarfile

log = structlog.get_logger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_MANIFEST_BYTES = 1024 * 1024  # manifests.loader.MAX_FILE_BYTES (the loader refuses more)
OVERSIZED = bytes(MAX_MANIFEST_BYTES + 1)
"""The stand-in for a manifest file larger than ``MAX_MANIFEST_BYTES``: never loaded, always
the same object (many huge files cost nothing), and the loader refuses it as too large."""
_MAX_SYMLINK_HOPS = 8
S_IFGITLINK = 0o160000


def clean_subpath(path: str, *, what: str) -> str:
    """Normalise a user-given folder relative to the deployment root; "" means the root itself.

    Absolute paths and paths that climb out with ``..`` raise SourceError naming ``what``.
    """
    raw = path.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise SourceError(f"{what} {path!r} must be relative to the deployment root")
    norm = posixpath.normpath(raw) if raw else "."
    if norm == ".." or norm.startswith("../") or "/../" in f"/{raw}/":
        raise SourceError(f"{what} {path!r} may not leave the deployment root (no '..')")
    return "" if norm == "." else norm


def join(*parts: str) -> str:
    """Join posix path parts, skipping empty ones ("" is the root)."""
    return "/".join(p for p in parts if p)


def lookup(store: BaseObjectStore, tree_id: ObjectID, path: str) -> tuple[int, ObjectID] | None:
    """Return (mode, object id) of ``path`` inside ``tree_id``, or None when it is not there."""
    if not path:
        return stat.S_IFDIR, tree_id
    mode, oid = stat.S_IFDIR, tree_id
    for part in path.split("/"):
        if not stat.S_ISDIR(mode):
            return None
        tree = store[oid]
        if not isinstance(tree, Tree):
            return None
        try:
            mode, oid = tree[part.encode()]
        except KeyError:
            return None
    return mode, oid


def blob_size(store: BaseObjectStore, oid: ObjectID) -> int | None:
    """The size of blob ``oid`` read from its loose-object or pack header, without inflating
    the blob; None when the store cannot tell that way (the caller then reads it)."""
    if not isinstance(store, DiskObjectStore):
        return None
    try:
        loose = store._get_shafile_path(oid)  # dulwich has no size API
        if os.path.exists(loose):
            with open(loose, "rb") as f:
                head = zlib.decompressobj().decompress(f.read(512), 64)
            kind, _, rest = head.partition(b" ")
            return int(rest.split(b"\0", 1)[0]) if kind == b"blob" else None
        for pack in store.packs:
            try:
                offset = pack.index.object_offset(oid)
            except KeyError:
                continue
            with open(pack.data.path, "rb") as f:
                f.seek(offset)
                return _packed_size(f.read(512))
    except (OSError, ValueError, zlib.error, AttributeError):
        return None
    return None


def _packed_size(entry: bytes) -> int | None:
    """The inflated size of the object whose pack entry starts ``entry`` (a delta: the size of
    the object it makes, from the delta's header)."""

    def varint(data: bytes, pos: int) -> tuple[int, int]:
        value, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos

    byte = entry[0]
    kind, size, shift, pos = (byte >> 4) & 7, byte & 0x0F, 4, 1
    while byte & 0x80:
        byte = entry[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
    if kind in (1, 2, 3, 4):  # commit, tree, blob, tag: the header says
        return size
    if kind == 6:  # OFS_DELTA: a base offset, then the deflated delta
        while entry[pos] & 0x80:
            pos += 1
        pos += 1
    elif kind == 7:  # REF_DELTA: the base's 20-byte id, then the deflated delta
        pos += 20
    else:
        return None
    delta = zlib.decompressobj().decompress(entry[pos:], 32)
    _, at = varint(delta, 0)  # the base's size
    return varint(delta, at)[0]  # the result's size


def manifest_blob(store: BaseObjectStore, oid: ObjectID) -> bytes:
    """A manifest file's bytes, or ``OVERSIZED`` when its header says it is too large."""
    size = blob_size(store, oid)
    if size is not None and size > MAX_MANIFEST_BYTES:
        return OVERSIZED
    return _blob(store, oid)


def _blob(store: BaseObjectStore, oid: ObjectID) -> bytes:
    obj = store[oid]
    if not isinstance(obj, Blob):
        raise SourceError(f"git object {oid.decode()} is not a file")
    return obj.as_raw_string()


def walk(
    store: BaseObjectStore, tree_id: ObjectID, prefix: str = ""
) -> Iterator[tuple[str, int, ObjectID]]:
    """Yield (path, mode, id) for every entry under ``tree_id``, depth first, in git's order."""
    tree = store[tree_id]
    if not isinstance(tree, Tree):
        raise SourceError(f"git object {tree_id.decode()} is not a folder")
    for entry in tree.iteritems():
        path = join(prefix, entry.path.decode("utf-8", "surrogateescape"))
        yield path, entry.mode, entry.sha
        if stat.S_ISDIR(entry.mode):
            yield from walk(store, entry.sha, path)


def is_manifest_name(name: str) -> bool:
    """True for the file names the manifest loader reads (``*.yaml`` / ``*.yml``)."""
    return name.lower().endswith(MANIFEST_SUFFIXES)


def with_compose_dotenvs(found: Iterable[str], dotenvs: Iterable[str]) -> list[str]:
    """The ``.env`` files of ``dotenvs`` that lie beside a compose file of ``found``."""
    folders = {posixpath.dirname(k) for k in found if is_compose_file(k)}
    return [d for d in dotenvs if posixpath.dirname(d) in folders]


def collect_manifests(store: BaseObjectStore, tree_id: ObjectID, prefix: str) -> dict[str, bytes]:
    """Return ``{prefix/relpath: bytes}`` for every YAML file under ``tree_id`` (trueup
    manifests, compose files and the data files beside them: the loader tells them apart)
    and every ``.env`` that lies beside a compose file, sorted.

    A symlink is followed only while it stays inside ``tree_id`` (so the tree id remains a
    correct cache key); one that leaves it, dangles or names a folder is skipped with a log
    event. Submodules are skipped. A file larger than ``MAX_MANIFEST_BYTES`` (by its git
    header) is never read: it is given as ``OVERSIZED``.
    """
    files: dict[str, bytes] = {}
    yamls: list[str] = []
    dotenvs: dict[str, tuple[int, ObjectID]] = {}
    for rel, mode, oid in walk(store, tree_id):
        if stat.S_ISDIR(mode) or mode == S_IFGITLINK:
            continue
        if posixpath.basename(rel) == DOTENV:
            dotenvs[rel] = (mode, oid)
        elif is_manifest_name(rel):
            yamls.append(rel)
            _read_entry(store, tree_id, files, prefix, rel, mode, oid)
    for rel in with_compose_dotenvs(yamls, list(dotenvs)):
        _read_entry(store, tree_id, files, prefix, rel, *dotenvs[rel])
    return dict(sorted(files.items()))


def _read_entry(
    store: BaseObjectStore,
    tree_id: ObjectID,
    files: dict[str, bytes],
    prefix: str,
    rel: str,
    mode: int,
    oid: ObjectID,
) -> None:
    key = join(prefix, rel)
    if stat.S_ISLNK(mode):
        data = _follow_symlink(store, tree_id, rel, oid)
        if data is None:
            log.warning("manifest_symlink_skipped", file=key)
            return
        files[key] = data
    else:
        files[key] = manifest_blob(store, oid)


def _follow_symlink(
    store: BaseObjectStore, tree_id: ObjectID, rel: str, oid: ObjectID
) -> bytes | None:
    """The bytes a symlink at ``rel`` resolves to inside ``tree_id``, or None if it cannot."""
    for _ in range(_MAX_SYMLINK_HOPS):
        target = _blob(store, oid).decode("utf-8", "surrogateescape")
        if target.startswith("/"):
            return None
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        if rel == ".." or rel.startswith("../"):
            return None
        found = lookup(store, tree_id, rel)
        if found is None:
            return None
        mode, oid = found
        if stat.S_ISREG(mode):
            return manifest_blob(store, oid)
        if not stat.S_ISLNK(mode):
            return None
    return None


def read_dockerignore(store: BaseObjectStore, tree_id: ObjectID) -> list[str]:
    """The ``.dockerignore`` patterns at the top of ``tree_id``, parsed as the docker SDK does."""
    found = lookup(store, tree_id, ".dockerignore")
    if found is None or not stat.S_ISREG(found[0]):
        return []
    text = _blob(store, found[1]).decode("utf-8", "replace")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def tar_tree(store: BaseObjectStore, tree_id: ObjectID, *, dockerfile: str = "Dockerfile") -> bytes:
    """An uncompressed tar of ``tree_id`` with ``.dockerignore`` applied (see module docstring).

    As with ``docker build``, the Dockerfile and ``.dockerignore`` are always included.
    """
    import tarfile

    patterns = read_dockerignore(store, tree_id)
    try:
        matcher = DockerIgnore([*patterns, f"!{dockerfile}"])
    except BadPattern as exc:
        where = _pattern_line(store, tree_id, exc.pattern) if exc.pattern in patterns else None
        what = f".dockerignore line {where}" if where else f"dockerfile {dockerfile!r}"
        raise SourceError(f"build context: {what}: cannot match {exc.pattern!r}: {exc}") from exc
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode, oid in _walk_included(store, tree_id, "", matcher):
            _add_entry(store, tar, path, mode, oid)
    return buf.getvalue()


def _walk_included(
    store: BaseObjectStore, tree_id: ObjectID, prefix: str, matcher: DockerIgnore
) -> Iterator[tuple[str, int, ObjectID]]:
    """The SDK's ``PatternMatcher.walk``, over a git tree instead of a folder on disk."""
    tree = store[tree_id]
    if not isinstance(tree, Tree):
        raise SourceError(f"git object {tree_id.decode()} is not a folder")
    for entry in tree.iteritems():
        path = join(prefix, entry.path.decode("utf-8", "surrogateescape"))
        excluded = bool(matcher.matches(path))
        if not excluded:
            yield path, entry.mode, entry.sha
        if not stat.S_ISDIR(entry.mode):
            continue
        if excluded and not any(
            p.exclusion and p.cleaned_pattern.startswith(path) for p in matcher.patterns
        ):
            continue  # an excluded folder that no "!pattern" reaches into
        yield from _walk_included(store, entry.sha, path, matcher)


def _add_entry(
    store: BaseObjectStore, tar: tarfile.TarFile, path: str, mode: int, oid: ObjectID
) -> None:
    import tarfile

    info = tarfile.TarInfo(path)
    info.mtime = 0
    info.uid = info.gid = 0
    if stat.S_ISDIR(mode) or mode == S_IFGITLINK:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.mode = 0o777
        info.linkname = _blob(store, oid).decode("utf-8", "surrogateescape")
        tar.addfile(info)
    else:
        data = _blob(store, oid)
        info.type = tarfile.REGTYPE
        info.mode = 0o755 if mode & 0o111 else 0o644
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _pattern_line(store: BaseObjectStore, tree_id: ObjectID, pattern: str) -> int | None:
    """The line of ``.dockerignore`` that holds ``pattern``."""
    found = lookup(store, tree_id, ".dockerignore")
    if found is None:
        return None
    text = _blob(store, found[1]).decode("utf-8", "replace")
    lines = (n for n, line in enumerate(text.splitlines(), 1) if line.strip() == pattern)
    return next(lines, None)
