"""Files put into a container before it starts: `FileContent` and the tar the engine takes.

Pure (no I/O). The tar holds only regular files at their absolute paths (relative to "/"),
with their mode and numeric owner; it has no folder entries, so folders that exist in the
image keep their own mode and owner, and the engine makes missing ones (0755, root). Uploaded
with ``PUT /containers/{id}/archive?path=/`` to a created container, which works the same for
a remote engine (``tcp://``, ``ssh://``): no host path is involved.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FileContent:
    """One file in the container: absolute ``path``, permission bits, owner and bytes (which
    may be a secret, so the repr leaves them out)."""

    path: str
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = field(default=b"", repr=False)


def tar_files(files: Iterable[FileContent]) -> bytes:
    """An uncompressed tar of ``files`` (sorted by path; a fixed mtime, so it is reproducible)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(item.path.lstrip("/"))
            info.size = len(item.data)
            info.mode = item.mode
            info.uid, info.gid = item.uid, item.gid
            info.mtime = 0
            tar.addfile(info, io.BytesIO(item.data))
        end = tar.offset
    # Up to the end-of-archive blocks only: Podman stops reading there and answers, and the
    # record padding tarfile adds after them, left unread, makes its socket close with a reset.
    return buffer.getvalue()[: end + 2 * tarfile.BLOCKSIZE]
