"""The fast path of a repeated no-op `trueup apply`: answer it from the stamp when every input
of the last converged pass is unchanged.

Run by `controller.cli.entry` before click, asyncio, structlog or the rest of trueup is
imported. In order: the invocation (argv, cwd, state dir, trueup's version, stdout/stderr
being terminals), the environment digest, every file and directory the pass read (stat; the
content digest where stat cannot decide), the code digest of the installed package, and last
the engine: the same list request the pass made, over its unix socket, whose fingerprint
(`controller.noop.fingerprint`) must equal the stamped one. All equal: print the stamped
stdout, log the pass (``noop_stamp: true``) and exit 0. `answer` returns None (and prints
nothing) on the first difference, and raises on anything unexpected; the entry point then
runs the regular command, which restamps or deletes the stamp.
"""

from __future__ import annotations

import _socket  # socket's C core: `socket` would import enum and selectors too
import json
import os
import sys
import time

from controller import __version__
from controller.noop import stamp
from controller.noop.fingerprint import list_fingerprint

TYPE_CHECKING = False  # typing and pathlib are not imported on the fast path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

ENGINE_TIMEOUT = 5.0
"""Seconds the list request may take (else the regular path asks, with its own timeout)."""
MAX_ANSWER = 64 << 20


def state_dir_of(args: Sequence[str], environ: Mapping[str, str]) -> str:
    """Where the command's ``--state-dir`` points (then ``TRUEUP_STATE_DIR``, the default).
    Only where to look: the stamp's own argv and state dir are compared afterwards."""
    found: str | None = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--state-dir" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--state-dir="):
            found = arg.removeprefix("--state-dir=")
    if found is None:
        found = environ.get("TRUEUP_STATE_DIR") or stamp.DEFAULT_STATE_DIR
    return found


def answer(args: Sequence[str], environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The stamped stdout and the log line to print when the stamp answers ``args``; None
    when it does not."""
    started = time.monotonic()
    if not args or args[0] != "apply":
        return None
    state_dir = state_dir_of(args[1:], environ)
    try:
        doc = stamp.read(state_dir)
        check(doc, args, environ, state_dir)
    except stamp.Stale:
        return None
    log = ""
    if doc.get("log"):
        log = log_line(doc.get("revision"), time.monotonic() - started)
    return str(doc["stdout"]), log


def check(
    doc: Mapping[str, Any], args: Sequence[str], environ: Mapping[str, str], state_dir: str
) -> None:
    """`Stale` unless every input in ``doc`` is as it is now."""
    same = (
        doc.get("argv") == list(args)
        and doc.get("cwd") == os.getcwd()
        and doc.get("state_dir") == os.path.realpath(state_dir)
        and doc.get("version") == __version__
        and doc.get("ttys") == [sys.stdout.isatty(), sys.stderr.isatty()]
    )
    if not same:
        raise stamp.Stale("another invocation")
    key = stamp.read_key(state_dir)
    names = stamp.env_names(doc["env_names"], environ)
    if names != doc["env_names"] or stamp.env_digest(key, names, environ) != doc["env"]:
        raise stamp.Stale("another environment")
    written_ns = int(doc["written_ns"])
    for entry in doc["files"]:
        stamp.check_file(key, entry, written_ns)
    for entry in doc["dirs"]:
        stamp.check_dir(key, entry, written_ns)
    package_dir = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if stamp.code_digest(package_dir) != doc["code"]:
        raise stamp.Stale("another trueup")
    engine = doc["engine"]
    rows = list_rows(str(engine["socket"]), str(engine["request"]))
    if list_fingerprint(rows) != doc["fingerprint"]:
        raise stamp.Stale("the engine's containers changed")


def list_rows(socket_path: str, request: str) -> list[Mapping[str, Any]]:
    """The engine's answer to ``GET request`` over its unix socket; `Stale` unless a 200
    with a JSON list."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(ENGINE_TIMEOUT)
        sock.connect(socket_path)
        sock.sendall(f"GET {request} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        chunks: list[bytes] = []
        size = 0
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER:
                raise stamp.Stale("answer too large")
    except OSError as exc:
        raise stamp.Stale(f"engine: {exc}") from exc
    finally:
        sock.close()
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")
    if not sep or len(status) < 2 or status[1] != "200":
        raise stamp.Stale("engine answered no 200")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    rows = json.loads(body)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise stamp.Stale("engine answered no list")
    return rows


def dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            raise stamp.Stale("truncated chunked answer")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(rest[:size])
        body = rest[size + 2 :]


def log_line(revision: object, duration_s: float) -> str:
    """The regular path's ``reconcile_pass`` event, as JSON, marked ``noop_stamp``."""
    now = time.time()
    stamp_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    micros = int((now % 1) * 1_000_000)
    event = {
        "revision": revision,
        "changes": 0,
        "failed": 0,
        "problems": 0,
        "routes_error": None,
        "duration_s": round(duration_s, 3),
        "noop_stamp": True,
        "event": "reconcile_pass",
        "level": "info",
        "timestamp": f"{stamp_text}.{micros:06d}Z",
    }
    return json.dumps(event)
