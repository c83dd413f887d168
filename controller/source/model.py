"""Values the git source hands to the rest of trueup: a revision, manifest files, a build context.

These are trueup's own types, so no dulwich object ever leaves ``controller.source``. The
reconciler gets a :class:`Revision` from ``GitSource.fetch``/``resolve`` (or from the watcher),
then asks for :class:`ManifestFiles` (the manifest loader parses them) and, for apps with a
``build:`` section, a :class:`BuildContext` (the runtime adapter sends its tar to the engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Revision:
    """A commit the source found: its full id and the branch it was read from, when known."""

    sha: str
    branch: str | None = None

    @property
    def short(self) -> str:
        """The first 12 hex digits, for messages and logs."""
        return self.sha[:12]


@dataclass(frozen=True)
class ManifestFiles:
    """The raw ``*.yaml``/``*.yml`` files under ``--path`` at one revision (or on disk).

    ``files`` maps a posix path relative to the deployment root to the file's bytes, in sorted
    order. ``tree_id`` is the git object id of ``--path`` at ``revision``: equal ids mean equal
    files, so the loader can cache its parse by it. Both are ``None`` for ``--worktree``.
    """

    revision: str | None
    tree_id: str | None
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildContext:
    """An uncompressed tar of a build context folder and the git tree id that identifies it.

    ``tree_id`` is the cache key for builds: the same id always yields the same tar bytes.
    """

    tree_id: str
    tar: bytes = field(repr=False)
