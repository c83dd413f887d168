"""Image retention: which images trueup built for this instance may go, and the stage that
removes them after a pass that built or replaced images.

`images_to_remove` is the policy, pure: per app, the ``keep`` newest images it built stay
(so reverting a commit reuses an image instead of rebuilding it), and so does every image a
container of the instance (running or stopped) uses or the pass's desired state names; the
rest go. Only images carrying this instance's ``trueup.image-instance`` label (put on at build
time) ever reach it: an image trueup did not build, or built for another instance, is never a
candidate.

`prune_images` is the stage, on any `Engine` (on Swarm the manager's engine, where the builds
are): it lists the labelled images and removes the chosen ones tag by tag, only the tags
trueup gave them (`own_tags`) and never forced (the engine refuses an image any container
uses, which is kept and logged), then prunes this instance's dangling images (build layers
left untagged). The reconciler calls it only when every manifest loaded (a pass whose desired
state has problems prunes nothing, as it prunes no containers). Its `ImagePrune` report feeds
the ``images_pruned`` log event and the ``trueup_images_pruned_total`` /
``trueup_image_bytes_freed_total`` metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from controller.errors import TrueupError
from controller.runtime.base import Engine, ImageInfo

log = structlog.get_logger(__name__)

DEFAULT_KEEP = 3
"""Images kept per app beyond those in use (setting ``image_keep``, flag ``--image-keep``)."""


@dataclass(frozen=True)
class ImagePrune:
    """What one retention stage did: the images removed (their tags), bytes freed, the images
    the engine refused to remove (in use outside what trueup sees) and an error, if any."""

    removed: tuple[str, ...] = ()
    bytes_freed: int = 0
    refused: tuple[str, ...] = ()
    error: str | None = None


def images_to_remove(
    images: Iterable[ImageInfo], *, in_use: Iterable[str], keep: int = DEFAULT_KEEP
) -> list[ImageInfo]:
    """The images that may go: per app (``trueup.app``), all but the ``keep`` newest, except
    any whose id or tag is in ``in_use``. An image without an app label is never chosen (it
    is not one trueup's builds made); the result is sorted by id."""
    used = set(in_use)
    by_app: dict[str, list[ImageInfo]] = defaultdict(list)
    for image in images:
        if image.app:
            by_app[image.app].append(image)
    out: list[ImageInfo] = []
    for group in by_app.values():
        newest = sorted(group, key=lambda i: (i.created, i.id), reverse=True)
        out.extend(
            i for i in newest[max(keep, 0) :] if i.id not in used and used.isdisjoint(i.tags)
        )
    return sorted(out, key=lambda i: i.id)


def own_tags(image: ImageInfo) -> tuple[str, ...]:
    """The tags trueup gave ``image``: ``trueup/<app>:...``, also under a registry (Swarm's
    push). A tag someone else added (``docker tag``) is never removed, so it keeps the image."""
    prefix = f"trueup/{image.app}:"
    return tuple(t for t in image.tags if t.startswith(prefix) or f"/{prefix}" in t)


def retained(
    images: Iterable[ImageInfo], app: str, *, in_use: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """``app``'s images on the engine, newest first, as `trueup status APP` and
    ``/api/v1/apps/NAME`` show them: ``{"tags", "id", "created", "size", "in_use"}``."""
    used = set(in_use)
    mine = sorted((i for i in images if i.app == app), key=lambda i: (i.created, i.id))
    return [
        {
            "tags": list(i.tags),
            "id": i.id,
            "created": i.created.isoformat(),
            "size": i.size,
            "in_use": i.id in used or not used.isdisjoint(i.tags),
        }
        for i in reversed(mine)
    ]


async def app_images(engine: Engine, app: str) -> list[dict[str, Any]]:
    """`retained` for ``app`` from the engine (its image list and its containers' images)."""
    images = await engine.list_images()
    return retained(images, app, in_use={c.image for c in await engine.list()})


async def prune_images(engine: Engine, *, in_use: Iterable[str], keep: int) -> ImagePrune:
    """Remove what `images_to_remove` chooses, then this instance's dangling images.
    ``in_use``: the images the instance's containers (any state) and its desired state name.

    Never raises a `TrueupError`: an engine that fails is the report's ``error`` (the next
    pass that builds tries again)."""
    used = set(in_use)
    try:
        images = await engine.list_images()
    except TrueupError as exc:
        log.warning("images_prune_failed", error=str(exc))
        return ImagePrune(error=str(exc))
    if not images:  # the list shows dangling ones too: nothing built here, nothing to prune
        return ImagePrune()
    removed: list[str] = []
    refused: list[str] = []
    freed = 0
    for image in images_to_remove(images, in_use=used, keep=keep):
        tags = own_tags(image)
        gone, refusal = await _remove(engine, tags)
        removed.extend(tags if gone else ())
        refused.extend(refusal)
        freed += image.size if gone else 0
    try:
        freed += await engine.prune_dangling_images()
    except TrueupError as exc:
        log.warning("images_prune_failed", error=str(exc))
    report = ImagePrune(tuple(removed), freed, tuple(refused))
    if removed or refused or freed:
        log.info(
            "images_pruned",
            removed=list(report.removed),
            refused=list(report.refused),
            bytes_freed=report.bytes_freed,
            keep=keep,
        )
    return report


async def _remove(engine: Engine, tags: Sequence[str]) -> tuple[bool, list[str]]:
    """Untag each of ``tags``; (True when the image went with them, the tags refused)."""
    gone = False
    refused: list[str] = []
    for tag in tags:
        try:
            gone = await engine.remove_image(tag) or gone
        except TrueupError as exc:  # in use by a container trueup does not see: it stays
            log.info("image_kept", tag=tag, reason=str(exc))
            refused.append(tag)
    return gone and not refused, refused
