"""The engine objects trueup owns beside containers: networks, named volumes, the instance claim.

Blocking steps over one `Transport` (the adapters run them off the event loop through
`Transport.run`), on any Docker-compatible engine: Docker, and Podman's compat API, whose
answers differ where noted. Bodies and queries come from `docker_requests`. Ownership is a
label (``trueup.instance``): trueup creates what is missing with it, and refuses a volume that
lacks it, so a manifest can never reach another instance's or another project's data unless
the host's ``allow_volumes`` names it (``adopt``). Nothing here deletes a volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from controller import labels as L
from controller.errors import RuntimeRejected
from controller.runtime import docker_requests as req
from controller.runtime.base import (
    CLAIM_LABEL_PREFIX,
    NetworkAttachment,
    claim_name,
    refused_volume,
)
from controller.runtime.transport import EngineHTTPError, Transport

log = structlog.get_logger(__name__)


def find_network(transport: Transport, name: str) -> dict[str, Any] | None:
    """The network named exactly ``name`` (the engine's name filter also matches parts)."""
    rows: list[dict[str, Any]] = transport.call("GET", "/networks", query=req.name_filter(name))
    return next((n for n in rows or [] if n.get("Name") == name), None)


def ensure_network(transport: Transport, name: str, *, instance: str) -> None:
    """Create the bridge network ``name``, labelled for ``instance``, unless it exists."""
    if find_network(transport, name) is not None:
        return
    try:
        body = req.network_body(name, labels={L.INSTANCE: instance})
        transport.call("POST", "/networks/create", body=body)
    except EngineHTTPError as exc:
        if exc.status != 409:  # created meanwhile by someone else: fine
            raise
    log.info("network_created", network=name)


def ensure_app_network(transport: Transport, name: str, instance: str, label: str) -> None:
    """Create the app network ``name`` (manifest name ``label``) of ``instance`` unless it
    exists; one there that does not carry both labels is another owner's: refused."""
    labels = req.app_network_labels(instance, label)
    found = find_network(transport, name)
    if found is None:
        try:
            transport.call("POST", "/networks/create", body=req.network_body(name, labels=labels))
            log.info("network_created", network=name)
            return
        except EngineHTTPError as exc:
            if exc.status != 409 and "already" not in exc.explanation:
                raise
        found = find_network(transport, name) or {}
    have = found.get("Labels") or {}
    if any(have.get(k) != v for k, v in labels.items()):
        raise RuntimeRejected(
            f"network {name}: exists but was not created by trueup for instance {instance}; "
            "refusing to join it"
        )


def connect_all(
    transport: Transport, container: str, networks: Sequence[NetworkAttachment]
) -> None:
    """Attach the created ``container`` to every network of ``networks`` after the first (the
    one it was created on), each with its DNS aliases."""
    for network in networks[1:]:
        body = req.connect_body(container, network.aliases)
        transport.call("POST", "/networks/{}/connect", network.name, body=body)


def unused_app_networks(transport: Transport, instance: str, keep: frozenset[str]) -> list[str]:
    """The app networks of ``instance`` (labelled as its own) whose names are not in ``keep``."""
    query = req.app_networks_filter(instance)
    rows: list[dict[str, Any]] = transport.call("GET", "/networks", query=query) or []
    return sorted(
        str(row.get("Name"))
        for row in rows
        if row.get("Name") not in keep
        and (row.get("Labels") or {}).get(L.INSTANCE) == instance
        and (row.get("Labels") or {}).get(L.NETWORK)
    )


def prune_networks(transport: Transport, instance: str, keep: frozenset[str]) -> list[str]:
    """Remove the app networks of ``instance`` not in ``keep`` with no container attached
    (`unused_app_networks`: only those labelled as its own); return the removed names."""
    removed = []
    for name in unused_app_networks(transport, instance, keep):
        detail = transport.call("GET", "/networks/{}", name) or {}
        if detail.get("Containers"):
            continue  # still in use (an app left as it was, a replica still stopping)
        try:
            transport.call("DELETE", "/networks/{}", name)
        except EngineHTTPError as exc:
            if exc.status in (403, 404, 409) or "active endpoints" in exc.explanation:
                continue  # gone meanwhile, or in use (a container joined, a swarm task)
            raise
        log.info("network_removed", network=name)
        removed.append(name)
    return removed


def claim(transport: Transport, instance: str, holder: Mapping[str, str]) -> dict[str, str] | None:
    """Create the claim network of ``instance`` (internal, labelled with ``holder``): None when
    this call made it, else the labels of the holder that has it. The engine refuses a second
    network of that name, so two controllers can never both get it."""
    name = claim_name(instance)
    labels = {L.INSTANCE: instance}
    labels.update({f"{CLAIM_LABEL_PREFIX}{k}": v for k, v in holder.items()})
    try:
        body = req.network_body(name, labels=labels, internal=True)
        transport.call("POST", "/networks/create", body=body)
        return None
    except EngineHTTPError as exc:
        # Docker answers 409; Podman 500 "network name ... already used"
        if exc.status != 409 and "already" not in exc.explanation:
            raise
    current = (find_network(transport, name) or {}).get("Labels") or {}
    return {
        k.removeprefix(CLAIM_LABEL_PREFIX): str(v)
        for k, v in current.items()
        if k.startswith(CLAIM_LABEL_PREFIX)
    }


def release(transport: Transport, instance: str) -> None:
    """Remove the claim network of ``instance``; none there is fine."""
    try:
        transport.call("DELETE", "/networks/{}", claim_name(instance))
    except EngineHTTPError as exc:
        if exc.status != 404:  # no claim: nothing to release
            raise


def ensure_volume(
    transport: Transport,
    name: str,
    *,
    legacy: str | None,
    instance: str,
    adopt: bool = False,
) -> str:
    """The volume to mount for ``name``: it, when it carries ``instance``'s label (or, with
    ``adopt``, the host's ``allow_volumes`` matching a ``volumeName``, whoever made it); else
    an existing ``legacy`` volume (pre-scoping name) with that label; else ``name``, created
    with the label. A volume there that is not ``instance``'s is refused (`RuntimeRejected`),
    and so is an unlabelled or foreign ``legacy`` one: it may hold this app's data, and the app
    must not start on an empty volume beside it (README, "Named volumes")."""
    found = _volume(transport, name)
    if found is not None:
        refusal = volume_refusal(found, name, instance=instance, adopt=adopt)
        if refusal is not None:
            raise RuntimeRejected(refusal)
        if _owner(found) != instance:
            log.info("volume_adopted", volume=name, made_by=_made_by(found))
        return name
    if legacy is not None and legacy != name:
        old = _volume(transport, legacy)
        if old is not None:
            return _legacy_volume(old, legacy, name=name, instance=instance)
    transport.call("POST", "/volumes/create", body=req.volume_body(name, instance=instance))
    log.info("volume_created", volume=name)
    return name


def check_volume(transport: Transport, name: str, *, instance: str, adopt: bool) -> str | None:
    """Why mounting the existing volume ``name`` is refused (`volume_refusal`); None when it
    is missing (trueup would create it) or may be mounted. Creates nothing."""
    found = _volume(transport, name)
    return None if found is None else volume_refusal(found, name, instance=instance, adopt=adopt)


def volume_refusal(
    volume: Mapping[str, Any], name: str, *, instance: str, adopt: bool
) -> str | None:
    """None when ``volume`` carries ``instance``'s label, or may be adopted (``adopt``: the
    host's ``allow_volumes`` matches its ``volumeName``); else the message that refuses it."""
    if adopt or _owner(volume) == instance:
        return None
    return refused_volume(name, _made_by(volume), instance)


def _legacy_volume(old: Mapping[str, Any], legacy: str, *, name: str, instance: str) -> str:
    """``legacy`` when the existing volume of that name is ``instance``'s, else refused."""
    owner = _owner(old)
    if owner == instance:
        log.info("volume_kept_old_name", volume=legacy, scoped=name)
        return legacy
    raise RuntimeRejected(
        f"volume {legacy}: exists but {_owned_by(owner)}, not by instance "
        f"{instance}; refusing to mount it, or to start on a new empty "
        f"volume {name} while it may hold this app's data: copy what it should "
        f"keep into {name} (created with label {L.INSTANCE}={instance}), "
        "see README, Named volumes"
    )


def _volume(transport: Transport, name: str) -> dict[str, Any] | None:
    """The engine's volume ``name``, None when there is none."""
    try:
        found: dict[str, Any] = transport.call("GET", "/volumes/{}", name) or {}
    except EngineHTTPError as exc:
        if exc.status != 404:
            raise
        return None
    return found


def _made_by(volume: Mapping[str, Any]) -> str:
    """Who made ``volume``, in words: a docker compose project, another instance, or neither."""
    labels = volume.get("Labels") or {}
    project = labels.get("com.docker.compose.project")
    if _owner(volume) is None and project:
        return f"was made by docker compose (project {project})"
    return _owned_by(_owner(volume))


def _owner(volume: Mapping[str, Any]) -> str | None:
    owner = (volume.get("Labels") or {}).get(L.INSTANCE)
    return str(owner) if owner is not None else None


def _owned_by(owner: str | None) -> str:
    return f"is owned by instance {owner}" if owner else "was not created by trueup"
