"""`FakeImages`: the image store of `FakeRuntime`, as an engine keeps it.

Tags point at image ids (``tags``, which `FakeRuntime.images` is); a build records its image
with its labels and a creation time (``built``); untagging the last tag of an image deletes
it, unless a container uses it. Pure bookkeeping, no I/O: the fake's contract methods call it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from controller import labels as L
from controller.errors import ImageNotFound, RuntimeRejected
from controller.runtime.base import ImageInfo

_SIZE = 1000
"""Bytes each tag of a built image counts for (the fake has no layers)."""


class FakeImages:
    """Tags and the images builds made, for one fake engine."""

    def __init__(self, tags: dict[str, str], now: Callable[[], datetime]) -> None:
        self.tags = tags
        self.built: dict[str, ImageInfo] = {}
        self._now = now

    def record(self, image_id: str, tag: str, labels: Mapping[str, str]) -> None:
        """A build of ``tag``: it moves to ``image_id`` (an earlier image keeps other tags)."""
        old = self.built.get(self.tags.get(tag, ""))
        if old is not None and old.id != image_id:
            self._retag(old, tuple(t for t in old.tags if t != tag))
        self.tags[tag] = image_id
        known = self.built.get(image_id)
        tags = tuple(sorted({*(known.tags if known else ()), tag}))
        created = known.created if known else self._now()
        self.built[image_id] = ImageInfo(image_id, tags, dict(labels), created, len(tags) * _SIZE)

    def of_instance(self, instance: str) -> list[ImageInfo]:
        """The built images labelled for ``instance``, oldest first."""
        mine = [i for i in self.built.values() if i.labels.get(L.IMAGE_INSTANCE) == instance]
        return sorted(mine, key=lambda i: (i.created, i.id))

    def untag(self, ref: str, used: Collection[str]) -> bool:
        """Remove ``ref``; True when its image went with it. ``used``: the images containers
        run (by name or id), which are refused."""
        image_id = self.tags.get(ref)
        if image_id is None:
            raise ImageNotFound(f"remove_image {ref}: no such image")
        if ref in used or image_id in used:
            raise RuntimeRejected(f"remove_image {ref}: image is being used by a container")
        del self.tags[ref]
        info = self.built.get(image_id)
        if info is None:
            return image_id not in self.tags.values()
        rest = tuple(t for t in info.tags if t != ref)
        if rest:
            self._retag(info, rest)
            return False
        del self.built[image_id]
        return True

    def prune_dangling(self, instance: str) -> int:
        """Drop the images of ``instance`` that lost every tag; their sizes."""
        gone = [i for i in self.of_instance(instance) if not i.tags]
        for image in gone:
            del self.built[image.id]
        return sum(i.size for i in gone)

    def _retag(self, info: ImageInfo, tags: tuple[str, ...]) -> None:
        self.built[info.id] = ImageInfo(info.id, tags, info.labels, info.created, info.size)
