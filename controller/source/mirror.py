"""Bare mirrors of remote repositories: create one, fetch into it, keep its refs exact.

Called by ``GitSource`` (``git.py``) for every URL ``--repo``, ``file://`` included. A mirror
lives at ``<state_dir>/mirrors/<hash of the credential-free URL>``; it is a bare repository
(no working tree is ever written) whose ``refs/heads/*``, ``refs/tags/*`` and ``HEAD`` are set
to exactly what the remote advertised at the last fetch, so a force-push or a deleted branch
simply moves or drops the ref. Credentials are never written into the mirror. Once a mirror
holds more than ``MAX_PACKS`` packs (one per fetch that brought objects), they are merged.

Every transport failure becomes ``SourceUnavailable`` naming the URL (retry later).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import structlog
from dulwich.client import (
    FetchPackResult,
    GitClient,
    HTTPUnauthorized,
    TCPGitClient,
    Urllib3HttpGitClient,
    get_transport_and_path,
    get_transport_and_path_from_url,
)
from dulwich.errors import HangupException, NotGitRepository
from dulwich.objects import ObjectID
from dulwich.protocol import Protocol
from dulwich.refs import Ref
from dulwich.repo import Repo, UnsupportedExtension, UnsupportedVersion

from controller.errors import SourceError, SourceUnavailable, TrueupError
from controller.source.location import RepoLocation

log = structlog.get_logger(__name__)

HEADS = b"refs/heads/"
TAGS = b"refs/tags/"
HEAD = Ref(b"HEAD")
OPEN_ERRORS = (NotGitRepository, UnsupportedVersion, UnsupportedExtension, OSError, ValueError)


def create_mirror(path: Path, location: RepoLocation) -> Repo:
    """Create an empty bare mirror at ``path`` whose ``remote.origin.url`` names the remote."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        repo = Repo.init_bare(str(path))
        config = repo.get_config()
        config.set((b"remote", b"origin"), b"url", location.display.encode())
        config.write_to_path()
    except OPEN_ERRORS as exc:
        raise SourceError(f"cannot create a mirror at {path}: {exc}") from exc
    log.info("git_mirror_created", url=location.display, path=str(path))
    return repo


MAX_PACKS = 32
"""Packs a mirror may hold before `compact` merges them (see there)."""

_DEFAULT_TIMEOUT_LOCK = threading.Lock()


class TimedTCPGitClient(TCPGitClient):
    """dulwich's git:// client with a deadline: its socket has none of its own, so a server
    that accepted the connection and went quiet would block the fetch (and the source's lock,
    and so every later pass) for good. Here connecting and every read give up after
    ``timeout`` seconds, and the fetch fails like any unreachable remote."""

    def __init__(self, host: str, port: int | None, *, timeout: float) -> None:
        super().__init__(host, port)
        self._timeout = timeout

    def _connect(
        self, cmd: bytes, path: str | bytes, protocol_version: int | None = None
    ) -> tuple[Protocol, Callable[[], bool], IO[bytes] | None]:
        # dulwich makes its socket inside this call and takes no timeout; a new socket starts
        # with the process default, so set that for this call only. Every other socket trueup
        # makes sets its own timeout or non-blocking mode, so the short window changes nothing
        # for them.
        with _DEFAULT_TIMEOUT_LOCK:
            previous = socket.getdefaulttimeout()
            socket.setdefaulttimeout(self._timeout)
            try:
                return super()._connect(cmd, path, protocol_version)
            finally:
                socket.setdefaulttimeout(previous)


def make_client(
    location: RepoLocation, *, token_file: Path | None, timeout: float
) -> tuple[GitClient, str]:
    """A dulwich client and remote path for ``location``, with credentials and timeouts."""
    if location.kind == "http":
        creds = location.credentials(token_file)
        try:
            client = Urllib3HttpGitClient(
                location.address,
                username=creds.username,
                password=creds.password,
                timeout=timeout,
            )
        except UnicodeError:  # basic auth is latin-1: a token with other characters
            raise SourceError(
                f"the credentials for {location.display} (URL or token file) contain "
                "characters HTTP basic authentication cannot carry"
            ) from None  # the cause would quote the secret
        return client, urlsplit(location.address).path
    if location.kind == "ssh":
        ssh_command = None
        if not (os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")):
            # Never prompt (there is nobody to answer) and do not hang on a dead host.
            ssh_command = f"ssh -o BatchMode=yes -o ConnectTimeout={max(1, int(timeout))}"
        if "://" in location.address:
            return get_transport_and_path_from_url(location.address, ssh_command=ssh_command)
        return get_transport_and_path(location.address, ssh_command=ssh_command)
    if location.kind == "git":
        parts = urlsplit(location.address)
        assert parts.hostname is not None  # parse_location requires a host for git://
        return TimedTCPGitClient(parts.hostname, parts.port, timeout=timeout), parts.path
    return get_transport_and_path_from_url(location.address)


def fetch_into(
    mirror: Repo, location: RepoLocation, *, token_file: Path | None, timeout: float
) -> None:
    """Fetch the remote's heads and tags into ``mirror`` and make its refs equal the remote's."""
    client, path = make_client(location, token_file=token_file, timeout=timeout)

    def wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
        return mirror.object_store.determine_wants_all(mirrored(refs))

    started = time.perf_counter()
    try:
        result: FetchPackResult = client.fetch(
            path, mirror, determine_wants=wants, ref_prefix=[HEAD, HEADS, TAGS]
        )
    except TrueupError:
        raise
    # Transports fail in open-ended ways (socket, urllib3, ssh subprocess, protocol); each is
    # a failed fetch the loop retries, never a traceback that stops it.
    except Exception as exc:
        raise SourceUnavailable(f"cannot fetch {location.display}: {_reason(exc)}") from exc
    finally:
        client.close()
    remote = mirrored(result.refs)
    sync_refs(mirror, remote, result.symrefs.get(HEAD), result.refs.get(HEAD))
    log.debug(
        "git_fetched",
        url=location.display,
        refs=len(remote),
        duration_s=round(time.perf_counter() - started, 4),
    )
    compact(mirror, max_packs=MAX_PACKS, display=location.display)


def compact(mirror: Repo, *, max_packs: int, display: str) -> bool:
    """Merge the mirror's packs into one once there are more than ``max_packs``.

    Every fetch that brings objects adds a pack, and objects are looked up pack by pack, so a
    controller polling a busy remote for weeks would slow down; merging keeps reads fast and
    the file count bounded. dulwich's repack holds the objects in memory while it works, which
    is fine for the repositories of manifests trueup reads. A failure only logs: the packs are
    still valid, and the next fetch tries again.
    """
    store = mirror.object_store
    packs = store.count_pack_files()
    if packs <= max_packs:
        return False
    started = time.perf_counter()
    try:
        store.repack()
    except Exception as exc:  # maintenance only: whatever went wrong, the old packs still serve
        log.warning("git_mirror_compact_failed", url=display, packs=packs, error=str(exc))
        return False
    log.info(
        "git_mirror_compacted",
        url=display,
        packs_before=packs,
        packs_after=store.count_pack_files(),
        duration_s=round(time.perf_counter() - started, 4),
    )
    return True


def sync_refs(
    mirror: Repo,
    remote: dict[Ref, ObjectID],
    head_target: Ref | None,
    head_sha: ObjectID | None,
) -> None:
    """Make the mirror's heads, tags and HEAD equal the remote's (force-pushes included)."""
    local = mirrored(dict(mirror.refs.as_dict()))
    for ref, sha in remote.items():
        if local.get(ref) != sha:
            mirror.refs[ref] = sha
    for ref in local.keys() - remote.keys():
        mirror.refs.remove_if_equals(ref, None)
    if head_target is None and head_sha is not None:
        # An old server that does not advertise symrefs: pick the branch HEAD points at.
        same = sorted(r for r, s in remote.items() if r.startswith(HEADS) and s == head_sha)
        preferred = [r for r in (Ref(HEADS + b"main"), Ref(HEADS + b"master")) if r in same]
        candidates = preferred or same
        head_target = candidates[0] if candidates else None
    if head_target is not None:
        mirror.refs.set_symbolic_ref(HEAD, head_target)


def mirrored(refs: Mapping[Ref, ObjectID | None]) -> dict[Ref, ObjectID]:
    """The heads and tags of a ref advertisement (peeled ``^{}`` entries dropped)."""
    return {
        ref: sha
        for ref, sha in refs.items()
        if sha is not None and ref.startswith((HEADS, TAGS)) and not ref.endswith(b"^{}")
    }


def _reason(exc: Exception) -> str:
    """A short, credential-free reason for a failed fetch."""
    if isinstance(exc, HTTPUnauthorized):
        return "authentication failed (check the URL's credentials or the token file)"
    if isinstance(exc, NotGitRepository):
        return "no git repository at that address"
    if isinstance(exc, HangupException):
        return "the server hung up (is the repository exported / does it exist?)"
    return str(exc) or type(exc).__name__
