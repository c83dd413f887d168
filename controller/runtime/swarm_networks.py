"""The overlay networks of a swarm trueup owns: the instance's, and the apps' own.

A blocking step over the docker SDK's low-level client (`SwarmRuntime` runs it off the event
loop). The instance network carries ``trueup.instance``; an app network (``spec.networks``)
also ``trueup.network``, and one of that name without both labels is another owner's: refused,
never joined. Removing unused app networks is the engine's (`docker_objects.prune_networks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker.errors
import structlog

from controller import labels as L
from controller.errors import ConfigError, RuntimeRejected

log = structlog.get_logger(__name__)


def ensure_overlay(client: Any, net: str, labels: Mapping[str, str]) -> None:
    """The attachable overlay network ``net`` with ``labels``, created when missing."""
    found = [n for n in client.networks(names=[net]) if n.get("Name") == net]
    if found:
        if found[0].get("Driver") != "overlay":
            raise ConfigError(
                f"network {net} exists with driver {found[0].get('Driver')}; the swarm "
                "runtime needs an overlay network of that name (remove the old one)"
            )
        have = found[0].get("Labels") or {}
        if L.NETWORK in labels and any(have.get(k) != v for k, v in labels.items()):
            raise RuntimeRejected(
                f"network {net}: exists but was not created by trueup for instance "
                f"{labels[L.INSTANCE]}; refusing to join it"
            )
        return
    try:
        client.create_network(
            net, driver="overlay", attachable=True, labels=dict(labels), check_duplicate=True
        )
    except docker.errors.APIError as exc:
        # created meanwhile by someone else: fine (Docker 409; swarmkit 500 "name conflicts")
        if exc.status_code != 409 and "conflicts with an existing" not in str(exc.explanation):
            raise
    log.info("network_created", network=net, driver="overlay")
