"""A unix-socket proxy that counts the HTTP requests passing through it, for call-count tests.

It sits between an adapter and the engine's socket, so the count is independent of anything
the adapter reports about itself.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path

_REQUEST_LINE = re.compile(rb"(?:^|\r\n)(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n")


class CountingProxy:
    """Forward ``path`` to ``upstream`` (both unix socket paths), recording request lines.

    Without ``path`` it listens on a free TCP port of 127.0.0.1 instead, so the engine behind
    ``upstream`` looks like a ``tcp://`` engine.
    """

    def __init__(self, upstream: str, path: Path | None = None) -> None:
        self.upstream = upstream
        self.requests: list[str] = []
        self._lock = threading.Lock()
        if path is None:
            self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._server.bind(("127.0.0.1", 0))
            self.url = f"tcp://127.0.0.1:{self._server.getsockname()[1]}"
        else:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(path))
            self.url = f"unix://{path}"
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    lines = [
                        f"{m[0].decode()} {m[1].decode()}" for m in _REQUEST_LINE.findall(data)
                    ]
                    with self._lock:
                        self.requests.extend(lines)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()
