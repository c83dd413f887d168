"""``--worktree``: read manifest files from disk instead of from a commit.

``validate`` and ``diff`` use this so a person can preview an uncommitted edit; ``apply`` and
``run`` never do. Called through ``GitSource.read_worktree`` (which knows the deployment root
of a local repository) or directly with a folder. The same rules as for a commit apply: only
``*.yaml``/``*.yml`` files, keys relative to the deployment root, no escaping it (a symlink
that resolves outside the root is skipped), ``.git`` folders are never read, and a file larger
than ``MAX_MANIFEST_BYTES`` is never read (it is given as ``OVERSIZED``, which the loader
refuses as too large).
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from controller.errors import SourceError
from controller.source.model import ManifestFiles
from controller.source.tree import (
    MAX_MANIFEST_BYTES,
    OVERSIZED,
    clean_subpath,
    is_manifest_name,
    join,
)

log = structlog.get_logger(__name__)


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
    else:
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            here = Path(dirpath)
            for name in filenames:
                if is_manifest_name(name):
                    file = here / name
                    _read_into(files, real_root, file, file.relative_to(root).as_posix())
    return ManifestFiles(revision=None, tree_id=None, files=dict(sorted(files.items())))


def _read_into(files: dict[str, bytes], real_root: Path, file: Path, key: str) -> None:
    real = file.resolve()
    if not real.is_relative_to(real_root) or not real.is_file():
        log.warning("manifest_symlink_skipped", file=join(key))
        return
    try:
        with real.open("rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_MANIFEST_BYTES:
                files[key] = OVERSIZED
                return
            data = f.read(MAX_MANIFEST_BYTES + 1)  # a file that grew meanwhile: still bounded
        files[key] = OVERSIZED if len(data) > MAX_MANIFEST_BYTES else data
    except OSError as exc:
        raise SourceError(f"cannot read {key}: {exc.strerror}") from exc
