"""Is a just-started container listening? A TCP connect to its declared ports, on its own
address, tells (the probe an app without a health check gets; see ``Applier._await_ready``).

The connection is opened and closed at once, sending nothing, as Kubernetes' ``tcpSocket``
probe does. ``Refused`` means "not listening yet" and is tried again; an address the
controller cannot reach (no route, or the connect times out: e.g. a remote engine, or
a controller on another network) ends the probe with ``unreachable``, and the caller falls back
to the settle window.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import Sequence
from typing import Literal

from controller.noop import exempt

Probe = Literal["listening", "unreachable", "timeout"]

RETRY_S = 0.01
"""Between two rounds of connects while every port refuses (loopback-cheap)."""

CONNECT_TIMEOUT_S = 0.2
"""One connect's bound: on a reachable bridge an answer (accept or refuse) takes well under 1 ms."""

_REFUSED = frozenset({errno.ECONNREFUSED, errno.ECONNRESET})


async def tcp_listening(host: str, ports: Sequence[int], within_s: float) -> Probe:
    """``listening`` as soon as one of ``ports`` on ``host`` accepts a connection,
    ``unreachable`` when none can be reached at all, ``timeout`` when they still refuse after
    ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        reachable = False
        for port in ports:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            outcome = await _connect(host, port, min(left, CONNECT_TIMEOUT_S))
            if outcome == "accepted":
                return "listening"
            reachable = reachable or outcome == "refused"
        if not reachable:
            return "unreachable"
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        await asyncio.sleep(min(RETRY_S, left))


async def _connect(host: str, port: int, timeout_s: float) -> str:
    try:
        with exempt.readiness_probe():  # not an input of the no-op stamp
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return "unreachable"
    except OSError as exc:
        return "refused" if exc.errno in _REFUSED else "unreachable"
    writer.close()
    with contextlib.suppress(OSError):  # the app reset it: it was listening all the same
        await writer.wait_closed()
    return "accepted"
