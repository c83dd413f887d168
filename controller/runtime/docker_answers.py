"""What the Docker Engine API answers, read into trueup's own values, pure.

Engine documents in (list rows, inspect documents, events, stats, build output, RFC 3339
times), `ContainerInfo`, `RuntimeEvent`, `Stats` and friends out; no I/O and no docker import.
Both dialects `DockerRuntime` meets are read here: Docker's and Podman's compat API (Podman
says "remove" for Docker's "destroy", puts the health in a top-level ``HealthStatus`` and adds
event attributes of its own). Tested by ``tests/runtime/test_docker_answers.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller import labels as L
from controller.runtime.base import (
    EVENT_KINDS,
    ContainerInfo,
    Health,
    ImageInfo,
    RuntimeEvent,
    Stats,
    network_name,
    parse_exit_code,
    parse_health,
    parse_state,
)

_NS = 1_000_000_000
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)? ?(.*)$")
_HEALTH_WORDS = ("healthy", "unhealthy", "starting")
_ACTION_ALIASES = {"remove": "destroy"}
_EVENT_ATTRIBUTES = frozenset({"name", "image", "exitCode", "containerExitCode", "podId"})
_EPOCH = datetime.fromtimestamp(0, UTC)


def parse_time(value: str) -> datetime | None:
    """An engine's RFC 3339 time (nanoseconds allowed) as an aware datetime."""
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        return None
    base, fraction, zone, _ = match.groups()
    micros = (fraction or ".0")[1:7].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(f"{base}.{micros}{offset}")
    except ValueError:
        return None


def split_timestamp(line: str) -> tuple[datetime | None, str]:
    """Split ``2024-01-01T00:00:00.123Z text`` into its time and text."""
    head, sep, rest = line.partition(" ")
    when = parse_time(head) if sep or head[:4].isdigit() else None
    return (when, rest) if when is not None else (None, line)


def health_word(word: str) -> Health | None:
    """``healthy``, ``unhealthy`` or ``starting``; None for anything else."""
    return word if word in _HEALTH_WORDS else None  # type: ignore[return-value]  # narrowed by the membership test


def address(networks: Mapping[str, Any], instance: str) -> str | None:
    """The container's address on the instance's network, else on the first of the
    instance's app networks (``trueup-<instance>-<name>``, by name), else its first address
    anywhere (it is on another network: ``spec.network``)."""
    found = addresses(networks)
    managed = network_name(instance)
    if managed in found:
        return found[managed]
    own = sorted(n for n in found if n.startswith(managed + "-"))
    if own:
        return found[own[0]]
    return next(iter(found.values()), None)


def addresses(networks: Mapping[str, Any]) -> dict[str, str]:
    """The address on each network of a ``NetworkSettings.Networks`` answer, by name."""
    return {
        str(name): str(n["IPAddress"])
        for name, n in networks.items()
        if isinstance(n, Mapping) and n.get("IPAddress")
    }


def container_from_row(row: Mapping[str, Any], instance: str) -> ContainerInfo:
    """A row of ``GET /containers/json`` (health and exit code from its status text)."""
    status = str(row.get("Status") or "")
    state = parse_state(str(row.get("State") or ""))
    networks = (row.get("NetworkSettings") or {}).get("Networks") or {}
    names = row.get("Names") or [""]
    return ContainerInfo(
        id=str(row["Id"]),
        name=str(names[0]).lstrip("/"),
        image=str(row.get("Image") or ""),
        labels=dict(row.get("Labels") or {}),
        state=state,
        health=parse_health(status),
        created=datetime.fromtimestamp(int(row.get("Created") or 0), UTC),
        ip_address=address(networks, instance),
        exit_code=parse_exit_code(status) if state in ("exited", "dead") else None,
        status=status,
        addresses=addresses(networks),
    )


def container_from_inspect(data: Mapping[str, Any], instance: str) -> ContainerInfo:
    """The document of ``GET /containers/{id}/json``."""
    state_data = data.get("State") or {}
    state = parse_state(str(state_data.get("Status") or ""))
    config = data.get("Config") or {}
    networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
    return ContainerInfo(
        id=str(data["Id"]),
        name=str(data.get("Name") or "").lstrip("/"),
        image=str(config.get("Image") or ""),
        labels=dict(config.get("Labels") or {}),
        state=state,
        health=health_word(str((state_data.get("Health") or {}).get("Status") or "")),
        created=parse_time(str(data.get("Created") or "")) or _EPOCH,
        ip_address=address(networks, instance),
        exit_code=int(state_data.get("ExitCode", 0)) if state in ("exited", "dead") else None,
        status=state,
        addresses=addresses(networks),
        restart_count=int(data.get("RestartCount") or 0),
        started_at=parse_time(str(state_data.get("StartedAt") or "")),
    )


def event_from(raw: Mapping[str, Any], instance: str) -> RuntimeEvent | None:
    """A container event of ``instance`` as a `RuntimeEvent`; None for another instance's
    containers and for actions trueup does not follow (`EVENT_KINDS`)."""
    action = str(raw.get("Action") or raw.get("status") or "")
    kind, _, detail = action.partition(":")
    kind = _ACTION_ALIASES.get(kind.strip(), kind.strip())
    if kind not in EVENT_KINDS:
        return None
    actor = raw.get("Actor") or {}
    attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
    if attributes.get(L.INSTANCE) != instance:
        return None
    health = None
    if kind == "health_status":
        health = health_word((detail.strip() or str(raw.get("HealthStatus") or "")).lower())
    exit_code = attributes.get("exitCode")
    return RuntimeEvent(
        kind=kind,
        container_id=str(actor.get("ID") or raw.get("id") or ""),
        name=attributes.get("name", ""),
        labels={k: v for k, v in attributes.items() if k not in _EVENT_ATTRIBUTES},
        time=event_time(raw),
        exit_code=int(exit_code) if exit_code and exit_code.lstrip("-").isdigit() else None,
        health=health,
    )


def event_time(raw: Mapping[str, Any]) -> datetime:
    """An event's time: ``timeNano`` when given, else ``time`` (seconds)."""
    nanos = raw.get("timeNano")
    if nanos:
        return datetime.fromtimestamp(int(nanos) / _NS, UTC)
    return datetime.fromtimestamp(int(raw.get("time") or 0), UTC)


def stats_from(data: Mapping[str, Any]) -> Stats:
    """Docker's stats document as trueup's `Stats` (CPU percent over all cores)."""
    cpu = data.get("cpu_stats") or {}
    pre = data.get("precpu_stats") or {}
    cpu_delta = float((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - float(
        (pre.get("cpu_usage") or {}).get("total_usage") or 0
    )
    system_delta = float(cpu.get("system_cpu_usage") or 0) - float(pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    percent = (cpu_delta / system_delta) * float(online or 1) * 100.0 if system_delta > 0 else 0.0
    memory = data.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    usage = max(0, int(memory.get("usage") or 0) - int(cache or 0))
    limit = memory.get("limit")
    pids = (data.get("pids_stats") or {}).get("current")
    return Stats(
        cpu_percent=max(0.0, percent),
        memory_bytes=usage,
        memory_limit=int(limit) if limit else None,
        pids=int(pids) if pids is not None else None,
    )


@dataclass
class BuildOutput:
    """A build's decoded output stream, read chunk by chunk (`feed`): the lines it printed,
    the engine's error (a failed step), and the built image's id when the engine said it."""

    lines: list[str] = field(default_factory=list)
    error: str = ""
    image_id: str = ""

    def feed(self, chunk: Mapping[str, Any]) -> list[str]:
        """Take one chunk; return its new non-blank lines (the error's too), in order."""
        new = [line for line in str(chunk.get("stream") or "").splitlines() if line.strip()]
        if chunk.get("error"):
            self.error = str(chunk["error"]).strip()
            new.append(self.error)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        self.lines.extend(new)
        return new


def image_from_row(row: Mapping[str, Any]) -> ImageInfo:
    """One row of ``GET /images/json`` (Docker's or Podman's) as an `ImageInfo`; the
    ``<none>:<none>`` placeholder of a dangling image is no tag."""
    tags = tuple(sorted(t for t in (row.get("RepoTags") or ()) if t and "<none>" not in t))
    created = row.get("Created")
    when = (
        datetime.fromtimestamp(int(created), UTC)
        if isinstance(created, int | float)
        else parse_time(str(created or "")) or _EPOCH
    )
    return ImageInfo(
        id=str(row.get("Id") or ""),
        tags=tags,
        labels=dict(row.get("Labels") or {}),
        created=when,
        size=int(row.get("Size") or 0),
    )


def image_deleted(answer: Any) -> bool:
    """True when a ``DELETE /images/{name}`` answer says an image was deleted, not only
    untagged."""
    items = answer if isinstance(answer, list) else []
    return any(isinstance(item, Mapping) and item.get("Deleted") for item in items)


@dataclass
class LineBuffer:
    """A stream's chunks (bytes or text) cut into lines: `feed` returns the lines a chunk
    completed (without their ``\r\n``/``\n``); ``pending`` is the unfinished rest."""

    pending: str = ""

    def feed(self, chunk: bytes | str) -> list[str]:
        """Add one chunk; return the lines it completed, in order."""
        self.pending += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
        *complete, self.pending = self.pending.split("\n")
        return [line.rstrip("\r") for line in complete]
