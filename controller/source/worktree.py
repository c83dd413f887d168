"""``--worktree``: read manifest files from disk instead of from a commit.

``validate`` and ``diff`` use this so a person can preview an uncommitted edit; ``apply`` and
``run`` never do. Called through ``GitSource.read_worktree`` (which knows the deployment root
of a local repository) or directly with a folder. The same rules as for a commit apply: only
``*.yaml``/``*.yml`` files and the ``.env`` beside a compose file, keys relative to the
deployment root, no escaping it (a symlink that resolves outside the root is skipped), ``.git``
folders are never read, and a file larger than ``MAX_MANIFEST_BYTES`` is never read (it is
given as ``OVERSIZED``, which the loader refuses as too large).

``context_id`` identifies a build context on disk for the same previews (``diff --worktree``
never builds): a context that leaves the repository through a symlink is refused, symlinks
inside it are hashed as links (never followed), and only regular files are ever opened: a
FIFO, device or socket in a context is a ``SourceError`` for that app, never a hung read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import structlog

from controller.errors import SourceError
from controller.manifests.discovery import DOTENV
from controller.manifests.discovery import is_compose_file as is_compose_name
from controller.source.model import ManifestFiles
from controller.source.tree import (
    MAX_MANIFEST_BYTES,
    OVERSIZED,
    clean_subpath,
    is_manifest_name,
    join,
    with_compose_dotenvs,
)

log = structlog.get_logger(__name__)

# Opening never blocks (a FIFO swapped in after the check) and never follows a symlink.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def read_worktree(root: Path, path: str = ".") -> ManifestFiles:
    """The manifest files on disk under ``root/path``, keyed relative to ``root``."""
    rel = clean_subpath(path, what="--path")
    real_root = root.resolve()
    start = root / rel if rel else root
    if not start.exists():
        raise SourceError(f"--path {path!r} does not exist in {root}")
    files: dict[str, bytes] = {}
    if start.is_file():
        if not is_manifest_name(start.name):
            raise SourceError(f"--path {path!r} is neither a folder nor a YAML file")
        _read_into(files, real_root, start, rel)
        if is_compose_name(rel) and (start.parent / DOTENV).is_file():
            dotenv = start.parent / DOTENV
            _read_into(files, real_root, dotenv, dotenv.relative_to(root).as_posix())
    else:
        dotenvs: dict[str, Path] = {}
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            here = Path(dirpath)
            for name in filenames:
                file = here / name
                key = file.relative_to(root).as_posix()
                if name == DOTENV:
                    dotenvs[key] = file
                elif is_manifest_name(name):
                    _read_into(files, real_root, file, key)
        for key in with_compose_dotenvs(list(files), list(dotenvs)):
            _read_into(files, real_root, dotenvs[key], key)
    return ManifestFiles(revision=None, tree_id=None, files=dict(sorted(files.items())))


def _read_into(files: dict[str, bytes], real_root: Path, file: Path, key: str) -> None:
    real = file.resolve()
    if not real.is_relative_to(real_root) or not real.is_file():
        log.warning("manifest_symlink_skipped", file=join(key))
        return
    try:
        with os.fdopen(os.open(real, _READ_FLAGS), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):  # swapped for a FIFO or device since the check
                log.warning("manifest_symlink_skipped", file=join(key))
                return
            if info.st_size > MAX_MANIFEST_BYTES:
                files[key] = OVERSIZED
                return
            data = f.read(MAX_MANIFEST_BYTES + 1)  # a file that grew meanwhile: still bounded
        files[key] = OVERSIZED if len(data) > MAX_MANIFEST_BYTES else data
    except OSError as exc:
        raise SourceError(f"cannot read {key}: {exc.strerror}") from exc


def context_id(root: Path, context: str) -> str:
    """A content id for the build context ``context`` (relative to ``root``) on disk."""
    rel = clean_subpath(context, what="build context")
    real_root = root.resolve()
    folder = (root / rel).resolve() if rel else real_root
    if not folder.is_relative_to(real_root):
        raise SourceError(f"build context {context!r} leaves the repository (through a symlink)")
    if not folder.is_dir():
        raise SourceError(f"build context {context!r} is not a folder in the working tree")
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):  # symlinked folders are not entered
        here = Path(dirpath)
        links = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in links)
        for name in sorted(filenames + links):
            path = here / name
            shown = path.relative_to(folder).as_posix()
            info = path.lstat()
            digest.update(shown.encode() + b"\0")
            digest.update(f"{stat.S_IMODE(info.st_mode):o}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                digest.update(_read_regular(path, context, shown))
            else:
                raise SourceError(
                    f"build context {context!r}: {shown} is not a regular file, folder or "
                    "symlink (a FIFO, device or socket is never read)"
                )
    return "wt" + digest.hexdigest()[:38]


def _read_regular(path: Path, context: str, shown: str) -> bytes:
    """The bytes of ``path``, opened so that it cannot block or follow a swapped-in link."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise SourceError(f"build context {context!r}: cannot read {shown}: {why}") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SourceError(f"build context {context!r}: {shown} is not a regular file")
        return f.read()
