"""The no-op stamp, ``<state_dir>/noop-stamp.json``: every input of a one-shot `apply` that
changed nothing, as the fast path (`controller.noop.fast`) compares them.

It holds digests and stat data only, never a value: file contents and environment values are
keyed digests (HMAC-SHA256 under the instance's ``secret-digest.key``, so a short secret
cannot be guessed from its digest). Written and read by this module alone (standard library
only), so the writer and the fast path agree on every field; any stamp this module does not
read back whole (another ``FORMAT``, truncated, hand-edited) counts as no stamp.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys

TYPE_CHECKING = False  # the fast path imports neither typing nor pathlib
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    StrPath = str | os.PathLike[str]

FORMAT = 1
STAMP_FILE = "noop-stamp.json"
KEY_FILE = "secret-digest.key"  # controller.desired.secrets.KEY_FILE (a test pins them equal)
DEFAULT_STATE_DIR = ".trueup"
RACY_NS = 2_000_000_000
"""A file modified this close before it was stat'ed could change again without its stat
changing (the clock's granularity): its content digest is compared too."""
MAX_DIGESTED = 1 << 20
"""Files larger than this are not digested (a racy one then means: no fast path)."""
ENGINE_ENV = (
    "DOCKER_HOST",
    "XDG_RUNTIME_DIR",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "HOME",
    "TZ",
    "NO_COLOR",
    "PYTHONPATH",
)
"""Environment variables read below the options (the engine's choice, git, SOPS, colour,
which code runs): part of the invocation digest with every option's ``envvar``."""


class Stale(Exception):
    """An input differs from the stamp's (or cannot be read): no fast path."""


def stamp_path(state_dir: StrPath) -> str:
    return os.path.join(state_dir, STAMP_FILE)


def digest(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def read_key(state_dir: StrPath) -> bytes:
    """The instance's digest key (its hex text as bytes); `Stale` when there is none."""
    try:
        with open(os.path.join(state_dir, KEY_FILE), "rb") as f:
            key = f.read().strip()
    except OSError as exc:
        raise Stale("no digest key") from exc
    if len(key) < 32:
        raise Stale("short digest key")
    return key


def code_digest(package_dir: StrPath) -> str:
    """The interpreter, and (path, size, mtime_ns) of every file of the package but its
    byte-code caches: a changed or added file of trueup gives another digest."""
    entries: list[str] = [sys.executable, sys.version]
    stack = [os.fspath(package_dir)]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
                entries.append(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}")
    entries.sort()
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def env_names(stamped: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The variables the invocation digest covers: the stamped names, `ENGINE_ENV`, and
    every ``TRUEUP_*`` variable set now (a new one is a new input)."""
    names = set(stamped) | set(ENGINE_ENV)
    names |= {n for n in environ if n.startswith("TRUEUP_")}
    return sorted(names)


def env_digest(key: bytes, names: Sequence[str], environ: Mapping[str, str]) -> str:
    values = [[n, environ.get(n)] for n in names]
    return digest(key, json.dumps(values, separators=(",", ":")).encode())


def file_entry(key: bytes, path: str, now_ns: int) -> list[Any]:
    """``[path, size, mtime_ns, ino, digest-or-None]``, or ``[path]`` when it is missing.

    The content digest is taken for files small enough (`MAX_DIGESTED`)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [path]
    if not os.path.isfile(path):
        return [path, st.st_size, st.st_mtime_ns, st.st_ino, None]
    content = None
    if st.st_size <= MAX_DIGESTED:
        with open(path, "rb") as f:
            content = digest(key, f.read())
    return [path, st.st_size, st.st_mtime_ns, st.st_ino, content]


def listing(key: bytes, path: str) -> str:
    return digest(key, "\0".join(sorted(os.listdir(path))).encode())


def dir_entry(key: bytes, path: str) -> list[Any]:
    """``[path, mtime_ns, ino, digest of its names]`` of a directory the pass listed,
    ``[path]`` when it is missing."""
    try:
        st = os.stat(path)
        names = listing(key, path)
    except FileNotFoundError:
        return [path]
    return [path, st.st_mtime_ns, st.st_ino, names]


def _stamped_missing(entry: Sequence[Any]) -> bool:
    """True when ``entry`` records its path as missing (and it still is: `Stale` if it
    appeared since)."""
    if len(entry) != 1:
        return False
    if os.path.lexists(entry[0]):
        raise Stale(f"{entry[0]} appeared")
    return True


def check_file(key: bytes, entry: Sequence[Any], written_ns: int) -> None:
    """`Stale` unless the file is as stamped (stat; content too when it was racy)."""
    path = entry[0]
    if _stamped_missing(entry):
        return
    try:
        st = os.stat(path)
    except OSError as exc:
        raise Stale(f"{path}: {exc}") from exc
    _, size, mtime_ns, ino, content = entry
    if (st.st_size, st.st_mtime_ns, st.st_ino) != (size, mtime_ns, ino):
        raise Stale(f"{path} changed")
    if mtime_ns >= written_ns - RACY_NS:
        if content is None:
            raise Stale(f"{path} is racy and not digested")
        with open(path, "rb") as f:
            if digest(key, f.read()) != content:
                raise Stale(f"{path} changed")


def check_dir(key: bytes, entry: Sequence[Any], written_ns: int) -> None:
    """`Stale` unless the directory is as stamped (stat; its names too when it was racy)."""
    path = entry[0]
    if _stamped_missing(entry):
        return
    try:
        st = os.stat(path)
        if (st.st_mtime_ns, st.st_ino) != (entry[1], entry[2]):
            raise Stale(f"{path} changed")
        if entry[1] >= written_ns - RACY_NS and listing(key, path) != entry[3]:
            raise Stale(f"{path} changed")
    except OSError as exc:
        raise Stale(f"{path}: {exc}") from exc


def write(state_dir: StrPath, doc: Mapping[str, Any]) -> None:
    """Write the stamp atomically, mode 0600."""
    import tempfile  # the writer's only (the fast path never writes)

    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{STAMP_FILE}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"format": FORMAT, **doc}, out, sort_keys=True)
        os.replace(tmp, stamp_path(state_dir))
    except BaseException:
        remove_file(tmp)
        raise


def remove(state_dir: StrPath) -> None:
    """Delete the stamp (a regular pass that is not a clean no-op)."""
    remove_file(stamp_path(state_dir))


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # missing, or an unwritable state dir: the pass itself reports that
        return


def read(state_dir: StrPath) -> dict[str, Any]:
    """The stamp; `Stale` when missing, unreadable, of another format or malformed."""
    try:
        with open(stamp_path(state_dir), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise Stale("no readable stamp") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise Stale("another stamp format")
    return doc
