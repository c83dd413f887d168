"""The git source: find the commit to deploy and read manifests and build contexts at it.

The reconciler (and the one-shot CLI commands) create one :class:`GitSource` per ``--repo`` and
keep it open: ``fetch()`` on every pass, then ``manifest_files()`` and ``build_context()`` at the
revision it returned. The watcher in ``watch.py`` calls ``fetch()`` when refs change or on its
poll timer.

* A local path is read in place from its object store (``fetch()`` only reads a ref). If the
  path is a sub-folder of a working tree, the enclosing repository is used and the sub-folder
  becomes the *deployment root*: ``--path`` and ``build.context`` are relative to it.
* Any URL, ``file://`` included, is fetched with dulwich into a bare mirror under
  ``<state_dir>/mirrors/<hash of the URL>`` (see ``mirror.py``); its refs follow the remote
  exactly, so a force-push simply moves the tip. No working tree is written.

dulwich is used only inside ``controller.source``; every dulwich failure is translated here
into ``SourceUnavailable`` (fetch failed: retry), ``RevisionNotFound`` or ``SourceError``.
"""

from __future__ import annotations

import posixpath
import re
import stat
import threading
import time
from collections import OrderedDict
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

import structlog
from dulwich.objects import Commit, ObjectID
from dulwich.objectspec import AmbiguousShortId, parse_commit
from dulwich.refs import Ref
from dulwich.repo import Repo

from controller.errors import RevisionNotFound, SourceError
from controller.manifests.discovery import DOTENV
from controller.manifests.discovery import is_compose_file as is_compose_name
from controller.source.files import SourceDigest, SourceFile, digest_tree, read_tree
from controller.source.location import RepoLocation, parse_location
from controller.source.mirror import HEAD, HEADS, OPEN_ERRORS, TAGS, create_mirror, fetch_into
from controller.source.model import BuildContext, ManifestFiles, Revision
from controller.source.tree import (
    clean_subpath,
    collect_manifests,
    is_manifest_name,
    join,
    lookup,
    manifest_blob,
    tar_tree,
)
from controller.source.worktree import read_worktree

log = structlog.get_logger(__name__)

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
# Revisions are looked up as object ids and ref names; refuse anything that could walk the
# filesystem ("..", a leading "/" or "-") before it reaches the refs container.
_REV = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/@+-]+$")

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A small least-recently-used map (bounded so large tars do not pile up in memory)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class GitSource:
    """One ``--repo``: a local repository read in place, or a remote mirrored under state_dir.

    Thread-safe: every repository access holds one lock, so the watcher may ``fetch()`` in a
    worker thread while the reconciler reads files. Use as a context manager, or call
    :meth:`close`, so pack files are closed.
    """

    def __init__(
        self,
        repo: str,
        *,
        state_dir: Path,
        branch: str | None = None,
        token_file: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.location: RepoLocation = parse_location(repo)
        self.is_remote = self.location.is_remote
        self.display = self.location.display
        if branch is not None:
            branch = branch.removeprefix("refs/heads/")
            if not _REV.match(branch):
                raise RevisionNotFound(f"invalid branch name {branch!r}")
        self._branch = branch
        self._token_file = token_file
        self._timeout = timeout
        self._lock = threading.RLock()
        self._repo: Repo | None = None
        self._closed = False
        self._fetched = False
        self._root = ""  # deployment root inside the repository tree ("" = the top)
        self.worktree_root: Path | None = None
        self.mirror_path: Path | None = None
        self.git_dirs: tuple[Path, ...] = ()
        self._roots: _Lru[str, tuple[str, ObjectID]] = _Lru(256)
        self._manifests: _Lru[tuple[bytes, str], dict[str, bytes]] = _Lru(64)
        self._contexts: _Lru[tuple[bytes, str], bytes] = _Lru(16)
        if self.is_remote:
            self.mirror_path = state_dir / "mirrors" / self.location.mirror_name
        else:
            self._open_local(Path(repo).expanduser())

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> GitSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the repository's pack files; the source cannot be used afterwards."""
        with self._lock:
            if self._repo is not None:
                self._repo.close()
                self._repo = None
            self._closed = True
            self._roots.clear()
            self._manifests.clear()
            self._contexts.clear()

    @property
    def branch(self) -> str | None:
        """The branch asked for with ``--branch``; None means the remote's / local HEAD branch."""
        return self._branch

    # -- revisions -------------------------------------------------------------------------

    def fetch(self) -> Revision:
        """Return the current tip of the branch; a remote is fetched into its mirror first.

        A local repository only has a ref read (cheap enough for every pass). A remote raises
        SourceUnavailable when the fetch fails; the mirror keeps what it had.
        """
        with self._lock:
            if self.is_remote:
                self._fetch_remote()
            return self._tip(self._require_repo())

    def resolve(self, rev: str | None = None) -> Revision:
        """Turn ``--rev`` (full or short SHA, tag, branch; None: branch tip) into a Revision.

        A remote is fetched first if this source has not fetched yet, and once more when
        ``rev`` is not in the mirror (it may have been pushed since). RevisionNotFound when git
        does not have it.
        """
        if rev is not None and not _REV.match(rev):
            raise RevisionNotFound(f"invalid revision {rev!r}")
        with self._lock:
            fetched_now = False
            if self.is_remote and not self._fetched:
                self._fetch_remote()
                fetched_now = True
            if rev is None:
                return self._tip(self._require_repo())
            found = self._find_commit(rev)
            if found is None and self.is_remote and not fetched_now:
                self._fetch_remote()
                found = self._find_commit(rev)
            if found is None:
                raise RevisionNotFound(f"revision {rev!r} not found in {self.display}")
            return found

    # -- reading ---------------------------------------------------------------------------

    def commit_subject(self, sha: str) -> str:
        """The first line of a commit's message ("" when the commit is not known)."""
        try:
            with self._lock:
                commit = self._require_repo()[sha.encode()]
        except (KeyError, ValueError, SourceError):
            return ""
        message = getattr(commit, "message", b"") or b""
        lines = message.decode("utf-8", errors="replace").strip().splitlines()
        return lines[0] if lines else ""

    def manifest_files(self, sha: str, path: str = ".") -> ManifestFiles:
        """The ``*.yaml``/``*.yml`` files under ``path`` (relative to the deployment root),
        and the ``.env`` beside each compose file (`tree.collect_manifests`).

        ``path`` may also name a single YAML file (a compose file comes with its ``.env``).
        Results are cached by the git tree id of ``path``, so a commit that does not touch it
        is answered from memory.
        """
        rel = clean_subpath(path, what="--path")
        with self._lock:
            full, root = self._root_tree(sha)
            mode, oid = self._lookup(full, root, rel, what="--path", given=path)
            files = self._manifests.get((oid, rel))
            if files is None:
                store = self._require_repo().object_store
                if stat.S_ISDIR(mode):
                    files = collect_manifests(store, oid, rel)
                elif stat.S_ISREG(mode) and is_manifest_name(rel):
                    files = {rel: manifest_blob(store, oid)}
                    dotenv = join(posixpath.dirname(rel), DOTENV)
                    found = lookup(store, root, dotenv) if is_compose_name(rel) else None
                    if found is not None and stat.S_ISREG(found[0]):
                        files = {dotenv: manifest_blob(store, found[1]), **files}  # sorted
                else:
                    raise SourceError(f"--path {path!r} is neither a folder nor a YAML file")
                self._manifests.put((oid, rel), files)
            return ManifestFiles(revision=full, tree_id=oid.decode(), files=dict(files))

    def build_context(
        self, sha: str, context: str, *, dockerfile: str = "Dockerfile"
    ) -> BuildContext:
        """A tar of the ``context`` folder at ``sha`` and its tree id (the build cache key).

        ``dockerfile`` (relative to the context) is never excluded by ``.dockerignore``, as
        with ``docker build``. SourceError when the folder is missing or is not a folder.
        """
        with self._lock:
            rel, oid = self._context_tree(sha, context)
            tar = self._contexts.get((oid, dockerfile))
            if tar is None:
                started = time.perf_counter()
                tar = tar_tree(self._require_repo().object_store, oid, dockerfile=dockerfile)
                self._contexts.put((oid, dockerfile), tar)
                log.debug(
                    "build_context_packed",
                    context=rel or ".",
                    tree_id=oid.decode(),
                    size=len(tar),
                    duration_s=round(time.perf_counter() - started, 4),
                )
            return BuildContext(tree_id=oid.decode(), tar=tar)

    def context_id(self, sha: str, context: str) -> str:
        """The git tree id of the ``context`` folder at ``sha`` (the build cache key), without
        packing it: what a no-op pass needs to tell whether an image must be rebuilt."""
        with self._lock:
            return self._context_tree(sha, context)[1].decode()

    def file_digest(self, sha: str, source: str) -> SourceDigest:
        """A ``spec.files`` source's digest and size at ``sha`` (no blob read; `source.files`)."""
        with self._lock:
            _, root = self._root_tree(sha)
            return digest_tree(self._require_repo().object_store, root, source)

    def read_files(self, sha: str, source: str) -> list[SourceFile]:
        """A ``spec.files`` source's files with their bytes at ``sha``."""
        with self._lock:
            _, root = self._root_tree(sha)
            return read_tree(self._require_repo().object_store, root, source)

    def _context_tree(self, sha: str, context: str) -> tuple[str, ObjectID]:
        """The cleaned context path and its tree id; SourceError when it is not a folder."""
        rel = clean_subpath(context, what="build context")
        full, root = self._root_tree(sha)
        mode, oid = self._lookup(full, root, rel, what="build context", given=context)
        if not stat.S_ISDIR(mode):
            raise SourceError(f"build context {context!r} is not a folder at {full[:12]}")
        return rel, oid

    def has_path(self, sha: str, path: str) -> bool:
        """True when ``path`` (relative to the deployment root) exists at ``sha``."""
        rel = clean_subpath(path, what="path")
        with self._lock:
            _, root = self._root_tree(sha)
            return lookup(self._require_repo().object_store, root, rel) is not None

    def read_worktree(self, path: str = ".") -> ManifestFiles:
        """``--worktree``: the manifest files on disk (uncommitted edits included)."""
        if self.worktree_root is None:
            raise SourceError(
                f"--worktree needs a local repository with a working tree; {self.display} has none"
            )
        return read_worktree(self.worktree_root, path)

    # -- internals: opening ----------------------------------------------------------------

    def _open_local(self, path: Path) -> None:
        if not path.is_dir():
            raise SourceError(f"--repo {self.display}: no such directory")
        try:
            repo = Repo.discover(str(path))
        except OPEN_ERRORS as exc:
            raise SourceError(f"--repo {self.display} is not inside a git repository") from exc
        self._repo = repo
        self.git_dirs = tuple(dict.fromkeys([Path(repo.controldir()), Path(repo.commondir())]))
        if repo.bare:
            return
        top, here = Path(repo.path).resolve(), path.resolve()
        rel = here.relative_to(top).as_posix()
        if rel == ".git" or rel.startswith(".git/"):
            raise SourceError(f"--repo {self.display} points inside the .git folder")
        self._root = "" if rel == "." else rel
        self.worktree_root = here

    def _require_repo(self) -> Repo:
        if self._closed:
            raise SourceError(f"git source for {self.display} is closed")
        if self._repo is None:
            assert self.mirror_path is not None  # only remotes open lazily
            if not (self.mirror_path / "HEAD").exists():
                raise SourceError(f"{self.display} has not been fetched yet")
            try:
                self._repo = Repo(str(self.mirror_path))
            except OPEN_ERRORS as exc:
                raise SourceError(
                    f"mirror of {self.display} at {self.mirror_path} is damaged; delete it"
                ) from exc
        return self._repo

    def _open_mirror(self) -> Repo:
        assert self.mirror_path is not None
        if (self.mirror_path / "HEAD").exists() or self._repo is not None:
            return self._require_repo()
        if self._closed:
            raise SourceError(f"git source for {self.display} is closed")
        self._repo = create_mirror(self.mirror_path, self.location)
        return self._repo

    def _fetch_remote(self) -> None:
        mirror = self._open_mirror()
        fetch_into(mirror, self.location, token_file=self._token_file, timeout=self._timeout)
        self._fetched = True

    # -- internals: reading ----------------------------------------------------------------

    def _tip(self, repo: Repo) -> Revision:
        if self._branch is not None:
            try:
                sha = repo.refs[Ref(HEADS + self._branch.encode())]
            except KeyError:
                raise RevisionNotFound(
                    f"branch {self._branch!r} not found in {self.display}"
                ) from None
            return Revision(sha=sha.decode(), branch=self._branch)
        names, head = repo.refs.follow(HEAD)
        target = names[-1] if names else HEAD
        branch = target[len(HEADS) :].decode() if target.startswith(HEADS) else None
        if head is None:
            raise RevisionNotFound(
                f"{self.display} has no commit on {branch or 'HEAD'} (empty repository?)"
            )
        return Revision(sha=head.decode(), branch=branch)

    def _find_commit(self, rev: str) -> Revision | None:
        repo = self._require_repo()
        try:
            commit = parse_commit(repo, rev.encode())
        except AmbiguousShortId as exc:
            raise RevisionNotFound(f"revision {rev!r} is ambiguous in {self.display}") from exc
        except ValueError as exc:
            raise RevisionNotFound(f"revision {rev!r} does not name a commit") from exc
        except KeyError:
            return None
        sha = commit.id.decode()
        name = rev.removeprefix("refs/heads/").encode()
        branch_ref = Ref(HEADS + name)
        tag_ref = Ref(TAGS + name)
        is_branch = (
            branch_ref in repo.refs
            and repo.refs[branch_ref] == commit.id
            and (rev.startswith("refs/heads/") or tag_ref not in repo.refs)
        )
        return Revision(sha=sha, branch=name.decode() if is_branch else None)

    def _root_tree(self, sha: str) -> tuple[str, ObjectID]:
        """(full commit id, tree id of the deployment root) for ``sha``."""
        cached = self._roots.get(sha)
        if cached is not None:
            return cached
        repo = self._require_repo()
        commit = None
        if _FULL_SHA.match(sha):
            try:
                obj = repo.object_store[ObjectID(sha.encode())]
            except KeyError:
                obj = None
            commit = obj if isinstance(obj, Commit) else None
        if commit is None:
            found = self._find_commit(sha) if _REV.match(sha) else None
            if found is None:
                raise RevisionNotFound(f"commit {sha!r} not found in {self.display}")
            obj = repo.object_store[ObjectID(found.sha.encode())]
            assert isinstance(obj, Commit)
            commit = obj
        full = commit.id.decode()
        found_root = lookup(repo.object_store, commit.tree, self._root)
        if found_root is None or not stat.S_ISDIR(found_root[0]):
            raise SourceError(
                f"deployment root {self._root!r} does not exist at commit {full[:12]} "
                f"of {self.display}"
            )
        if sha == full:  # only a full id is immutable; a ref name may move
            self._roots.put(sha, (full, found_root[1]))
        return full, found_root[1]

    def _lookup(
        self, full: str, root: ObjectID, rel: str, *, what: str, given: str
    ) -> tuple[int, ObjectID]:
        found = lookup(self._require_repo().object_store, root, rel)
        if found is None:
            where = join(self._root, rel) or "."
            raise SourceError(
                f"{what} {given!r} does not exist at commit {full[:12]} ({where} in {self.display})"
            )
        return found
