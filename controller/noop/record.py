"""The regular `apply`'s side of the no-op stamp: record what the pass read, and write the
stamp when the pass changed nothing and found nothing wrong (else delete it).

`Recording.start` deletes any stamp first (so a pass that fails on the way leaves none), then
watches the process through an audit hook: every file opened (``open``), every directory
listed (``os.listdir``, ``os.scandir``), every socket connected to and any process started.
Trueup's and Python's own code is left out (the stamp's code digest covers the package).
`Recording.finish` writes the stamp only when all of these hold: exit code 0, the plan in
sync, no outcome, problem, refusal, warning or route error; ``--router none``; a local
repository; the plain Docker adapter on a ``unix://`` socket whose every list answer (one
fingerprint) showed only running, not-starting containers, and that made no other request;
no socket but the engine's (and the readiness probe's, `controller.noop.exempt`) and no
subprocess. Anything else: no stamp. Capturing stdout is
a tee on ``sys.stdout``.

A pass that applied changes is stamped too, as the no-op the next identical `apply` would be,
when every change succeeded and the plan made again from the pass's look at the engine after
apply (its last list answer, the one fingerprinted) is in sync: the caller hands that plan's
result and what a no-op prints (`Converged`), and the stamp holds the after-apply fingerprint.
The apply's own engine requests are not inputs of that plan; the after-apply list is.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import controller
from controller import __version__
from controller.noop import exempt, stamp
from controller.noop.fingerprint import LIST_PATH

if TYPE_CHECKING:
    import click

    from controller.reconciler import PassResult

PACKAGE_DIR = Path(controller.__file__).resolve().parent
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pth", ".pyi", ".typed")
_ACTIVE: list[Recording] = []  # audit hooks cannot be removed: the hook reads this
_HOOKED: list[bool] = []  # one hook a process


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _ACTIVE and event in _EVENTS:
        _ACTIVE[-1].note(event, args)


_EVENTS = frozenset(
    {"open", "os.listdir", "os.scandir", "socket.connect", "subprocess.Popen", "os.exec",
     "os.posix_spawn", "os.spawn", "os.fork", "os.system"}
)  # fmt: skip


class _Tee:
    """``sys.stdout`` that also keeps the text written through it."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        if isinstance(text, str):  # click probes with b"" for a binary stream
            self.parts.append(text)
        return self.inner.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Recording:
    """What one regular `apply` read; see the module docstring."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        self.sockets: set[str] = set()
        self.spawned = False
        self.engine: object | None = None
        roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *_site_dirs()}
        self._code_roots = tuple(os.path.abspath(p) + os.sep for p in roots)
        self._path_dirs = {os.path.abspath(p) for p in sys.path if p}
        self._thread_lock = threading.Lock()
        self._tee: _Tee | None = None

    @classmethod
    def start(cls, state_dir: Path) -> Recording:
        stamp.remove(state_dir)
        recording = cls(state_dir)
        if not _HOOKED:
            sys.addaudithook(_audit)
            _HOOKED.append(True)
        _ACTIVE.append(recording)
        recording._tee = _Tee(sys.stdout)
        sys.stdout = recording._tee
        return recording

    def stop(self) -> str:
        """Stop watching; the text written to stdout meanwhile."""
        with contextlib.suppress(ValueError):
            _ACTIVE.remove(self)
        if self._tee is None:
            return ""
        if sys.stdout is self._tee:
            sys.stdout = self._tee.inner
        return "".join(self._tee.parts)

    def watch_engine(self, engine: object) -> None:
        """The engine the pass drives: a Docker adapter keeps its list answers' fingerprints
        for the stamp from now on (it keeps none unless asked)."""
        self.engine = engine
        if hasattr(engine, "listed"):
            engine.listed = []

    def note(self, event: str, args: tuple[Any, ...]) -> None:
        with self._thread_lock:
            if event == "open":
                self._note_path(args[0], self.files)
            elif event in ("os.listdir", "os.scandir"):
                self._note_path(args[0] if args[0] is not None else ".", self.dirs)
            elif event == "socket.connect":
                if exempt.probing():  # readiness: when apply goes on, not what it reports
                    return
                address = args[1] if len(args) > 1 else None
                self.sockets.add(address if isinstance(address, str) else repr(address))
            else:
                self.spawned = True

    def _note_path(self, raw: object, into: set[str]) -> None:
        if isinstance(raw, int):  # a file descriptor: what it is was recorded when opened
            return
        if isinstance(raw, bytes):
            raw = os.fsdecode(raw)
        if not isinstance(raw, (str, os.PathLike)):
            return
        path = os.path.abspath(os.fspath(raw))
        if path.startswith(self._code_roots) or path.startswith(str(PACKAGE_DIR) + os.sep):
            return  # Python's and the installed packages' code (the code digest covers trueup)
        if f"{os.sep}__pycache__{os.sep}" in path:
            return
        if into is self.dirs and (path in self._path_dirs or _is_package(path)):
            return  # the import system scanning sys.path
        if (
            into is self.files
            and path.endswith(_CODE_SUFFIXES)
            and any(path.startswith(d + os.sep) for d in self._path_dirs)
        ):
            return
        name = os.path.basename(path)
        if os.path.dirname(path) == str(self.state_dir.resolve()) and (
            name.startswith((stamp.STAMP_FILE, f".{stamp.STAMP_FILE}"))
        ):
            return
        into.add(path)

    def finish(
        self,
        command: click.Command,
        opts: Any,
        result: PassResult,
        exit_code: int,
        converged: Converged | None = None,
    ) -> None:
        """Write the stamp when this pass may be memoized (see the module docstring);
        ``converged``: a pass that applied changes, as the no-op after it."""
        printed = self.stop()
        after = False
        if converged is not None:  # `_stamp` still requires exit code 0 and a clean result
            result, printed, after = converged.result, converged.stdout, True
        try:
            doc = self._stamp(command, opts, result, exit_code, printed, after=after)
            if doc is not None:
                stamp.write(self.state_dir, doc)
        except (OSError, ValueError, stamp.Stale):
            stamp.remove(self.state_dir)  # no stamp is always a safe answer

    def _stamp(
        self,
        command: click.Command,
        opts: Any,
        result: PassResult,
        exit_code: int,
        printed: str,
        *,
        after: bool = False,
    ) -> dict[str, Any] | None:
        from controller.runtime.docker import DockerRuntime

        engine = self.engine
        if exit_code != 0 or not _clean(result):
            return None
        if opts.routing.router != "none" or "://" in opts.source.repo:
            return None
        if type(engine) is not DockerRuntime or not engine.url.startswith("unix://"):
            return None  # Podman (two list requests), Swarm, tcp engines: no stamp
        seen = engine.listed
        if seen is None:
            return None
        if after:  # the look before apply and the one after it; the plan read the latter
            if len(seen) != 2 or engine.calls.get("list") != 2:
                return None
            seen = seen[-1:]
        elif set(engine.calls) - {"list"}:
            return None  # an engine answer other than the list would be an unstamped input
        socket_path = engine.url.removeprefix("unix://")
        if not seen or len({(s.fingerprint, str(sorted(s.query.items()))) for s in seen}) != 1:
            return None
        if (
            not seen[0].fingerprint
            or not seen[0].all_running
            or self.spawned
            or self.sockets - {socket_path}
        ):
            return None
        from controller.runtime.transport import API_VERSION, api_path

        key = stamp.read_key(self.state_dir)
        now_ns = time.time_ns()
        names = stamp.env_names(_option_envvars(command), os.environ)
        files = sorted(self.files | _declared_files(opts))
        # where trueup is installed: installing or upgrading a dependency changes its listing
        dirs = sorted(self.dirs | _declared_dirs(opts) | {str(PACKAGE_DIR.parent)})
        return {
            "version": __version__,
            "code": stamp.code_digest(PACKAGE_DIR),
            "argv": sys.argv[1:],
            "cwd": os.getcwd(),
            "state_dir": os.path.realpath(self.state_dir),
            "env_names": names,
            "env": stamp.env_digest(key, names, os.environ),
            "ttys": [sys.stdout.isatty(), sys.stderr.isatty()],
            "files": [stamp.file_entry(key, f, now_ns) for f in files],
            "dirs": [stamp.dir_entry(key, d) for d in dirs],
            "engine": {
                "socket": socket_path,
                "request": api_path(f"/v{API_VERSION}{LIST_PATH}", query=dict(seen[0].query)),
            },
            "fingerprint": seen[0].fingerprint,
            "stdout": printed,
            "log": opts.output == "text",
            "revision": result.revision,
            "written_ns": now_ns,
        }


class Converged(NamedTuple):
    """A pass that applied changes, as the no-op after it: the plan made again from the
    look at the engine after apply (in sync), and what a no-op `apply` prints for it."""

    result: PassResult
    stdout: str


@contextlib.contextmanager
def recording(state_dir: Path) -> Iterator[Recording]:
    """`Recording.start` … `stop` (the caller calls `finish` on the success path)."""
    rec = Recording.start(state_dir)
    try:
        yield rec
    finally:
        rec.stop()


def _site_dirs() -> list[str]:
    """Where installed packages live (site-packages of the venv and of the user)."""
    import site

    found = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    return [*found, *([user] if isinstance(user, str) else [])]


def _is_package(path: str) -> bool:
    return os.path.exists(os.path.join(path, "__init__.py"))


def _clean(result: PassResult) -> bool:
    desired = result.desired
    return (
        desired is not None
        and not desired.errors
        and not desired.invalid
        and not desired.load_failed
        and result.plan.in_sync
        and not result.plan.changes
        and not result.plan.refused
        and not result.outcomes
        and not result.problems
        and result.routes_error is None
        and not result.routes_pushed
        and result.images is None
        and result.revision is not None
    )


def _option_envvars(command: click.Command) -> list[str]:
    names: list[str] = []
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.append(envvar)
        elif isinstance(envvar, (list, tuple)):
            names.extend(str(e) for e in envvar)
    return names


def _declared_files(opts: Any) -> set[str]:
    """Files the options name (recorded missing or not: one appearing is a new input)."""
    named = [*opts.policy.sops_age_key_files]
    if opts.source.token_file is not None:
        named.append(opts.source.token_file)
    named.append(opts.engine.state_dir / stamp.KEY_FILE)
    return {os.path.abspath(p) for p in named}


def _declared_dirs(opts: Any) -> set[str]:
    """Directories the options name: a secrets or vars folder made later is a new input."""
    named = [opts.policy.secrets_dir, opts.compose.vars_dir]
    return {os.path.abspath(p) for p in named if p is not None}
