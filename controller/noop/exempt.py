"""Connections a pass makes that are not inputs of what it reports, so the no-op stamp's
recording (`controller.noop.record`) need not refuse the stamp for them.

Only the readiness probe uses it (``targets.containers.readiness``): its TCP connects to a
just-started container decide *when* apply goes on, never the plan made after apply from the
engine's list, which is what the stamp memoizes. The mark is a context variable, so it covers
exactly the connects made by the probing task (the audit hook runs in the caller's context).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_PROBING: ContextVar[bool] = ContextVar("trueup_probing", default=False)


@contextlib.contextmanager
def readiness_probe() -> Iterator[None]:
    """Connects made inside are the readiness probe's."""
    token = _PROBING.set(True)
    try:
        yield
    finally:
        _PROBING.reset(token)


def probing() -> bool:
    """True inside `readiness_probe` (in this context)."""
    return _PROBING.get()
