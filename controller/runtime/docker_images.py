"""The image calls of image retention on a Docker-compatible engine: list the images built
for an instance, untag one, prune the instance's dangling ones.

Blocking steps over one `Transport` (`DockerRuntime` runs them off the event loop through
`Transport.run`), the same on Docker and Podman's compat API: both filter ``GET /images/json``
and ``POST /images/prune`` by label (``trueup.image-instance``), and both refuse to delete an
image a container uses (409) when not forced, which these never do. ``POST /build/prune`` is
not used: Docker's prunes the BuildKit cache of the whole engine, and Podman 4.3 has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.runtime import docker_requests as req
from controller.runtime.base import ImageInfo
from controller.runtime.docker_answers import image_deleted, image_from_row
from controller.runtime.transport import Transport


def list_images(transport: Transport, instance: str, name: Callable[[str], str]) -> list[ImageInfo]:
    """The images labelled for ``instance`` (one request), oldest first; ``name`` turns the
    engine's tag into trueup's (Podman qualifies names)."""
    rows: list[dict[str, Any]] = transport.call(
        "GET", "/images/json", query=req.image_filter(instance)
    )
    images = [image_from_row(row) for row in rows or []]
    named = [
        ImageInfo(i.id, tuple(name(t) for t in i.tags), i.labels, i.created, i.size) for i in images
    ]
    return sorted(named, key=lambda i: (i.created, i.id))


def remove_image(transport: Transport, ref: str) -> bool:
    """Untag ``ref`` (never forced); True when the image itself was deleted."""
    return image_deleted(transport.call("DELETE", "/images/{}", ref))


def prune_dangling(transport: Transport, instance: str) -> int:
    """Prune ``instance``'s dangling images; the bytes the engine reclaimed."""
    query = req.image_filter(instance, dangling=True)
    answer: dict[str, Any] = transport.call("POST", "/images/prune", query=query) or {}
    return int(answer.get("SpaceReclaimed") or 0)
