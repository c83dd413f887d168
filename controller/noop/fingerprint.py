"""What the planner saw of the engine's one container list, as a digest: the projection of a
``GET /containers/json`` row onto exactly the fields `container_from_row` reads.

The Docker adapter computes it from the same rows `DockerRuntime.list` turned into
`ContainerInfo`s (no second list call), the fast path from its own list request; both call
`list_fingerprint`, so they cannot drift. The status text ("Up 3 minutes") is not projected,
only what is parsed from it (health, and the exit code of an exited container): it changes
every minute while nothing the planner reads does. Standard library only.
"""

from __future__ import annotations

import hashlib
import json

TYPE_CHECKING = False  # typing itself is not imported on the fast path
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from controller.runtime.base import Health

LIST_PATH = "/containers/json"
"""The list request's path (after the API version prefix)."""


_HEALTH_MARKS: tuple[tuple[str, Health], ...] = (
    ("(healthy)", "healthy"),
    ("(unhealthy)", "unhealthy"),
    ("(health: starting)", "starting"),
)
_EXITED = "Exited ("


def list_query(instance_label_filter: str) -> dict[str, str]:
    """The list query for every container (any state) with ``instance_label_filter``."""
    return {"all": "1", "filters": json.dumps({"label": [instance_label_filter]})}


def health_in(status: str) -> Health | None:
    """Health from an engine's status text, e.g. ``Up 5 seconds (healthy)``: the first of
    the marks in it (string search, not `re`: the fast path does not import it)."""
    found = [(status.find(mark), word) for mark, word in _HEALTH_MARKS if mark in status]
    return min(found)[1] if found else None


def exit_code_in(status: str) -> int | None:
    """The exit code from a status text such as ``Exited (137) 2 seconds ago``."""
    if not status.startswith(_EXITED):
        return None
    number, closed, _ = status[len(_EXITED) :].partition(")")
    digits = number.removeprefix("-")
    if not closed or not digits or not (digits.isascii() and digits.isdigit()):
        return None
    return int(number)


def project(row: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of a list row that `container_from_row` reads; the status text only as
    the health and exit code it gives."""
    status = str(row.get("Status") or "")
    networks = (row.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        "id": str(row.get("Id")),
        "names": [str(n) for n in row.get("Names") or []],
        "image": str(row.get("Image") or ""),
        "labels": {str(k): str(v) for k, v in (row.get("Labels") or {}).items()},
        "state": str(row.get("State") or ""),
        "health": health_in(status),
        "exit_code": exit_code_in(status),
        "created": row.get("Created"),
        "addresses": {
            str(name): str(n.get("IPAddress") or "")
            for name, n in networks.items()
            if isinstance(n, dict)
        },
    }


def list_fingerprint(rows: Sequence[Mapping[str, Any]]) -> str:
    """A digest of the projected rows (sorted by id: the engine's order is not the point)."""
    projected = sorted((project(r) for r in rows), key=lambda p: p["id"])
    canonical = json.dumps(projected, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def all_running(rows: Sequence[Mapping[str, Any]]) -> bool:
    """True when every row is a running container whose health is not still starting (a
    stamp is made only then: a pass over a stopped or starting container may decide by the
    clock, e.g. a restart backoff)."""
    return all(
        str(r.get("State") or "") == "running"
        and health_in(str(r.get("Status") or "")) in (None, "healthy")
        for r in rows
    )
