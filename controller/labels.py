"""The labels trueup puts on every container it owns; observed state is read back from them.

They are the controller's only memory that survives a restart: which instance owns a
container, which app and replica it is, which spec and revision it runs. See architecture.md,
"Ownership: labels on every container".
"""

from __future__ import annotations

INSTANCE = "trueup.instance"
APP = "trueup.app"
REPLICA = "trueup.replica"
SPEC_HASH = "trueup.spec-hash"
REVISION = "trueup.revision"
SPEC = "trueup.spec"
USER_PREFIX = "trueup.label."


def instance_filter(instance: str) -> str:
    """The engine-side label filter that selects every container of ``instance``."""
    return f"{INSTANCE}={instance}"
