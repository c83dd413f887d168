"""Image retention: the pure policy (`images_to_remove`) and, on FakeRuntime, the stage a
pass runs after it built or replaced images."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from controller.errors import ConfigError
from controller.http.metrics import Metrics
from controller.reconciler import Reconciler
from controller.runtime.base import ImageInfo
from controller.runtime.fake import FakeRuntime
from controller.settings import load_settings
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from controller.targets.images import images_to_remove, own_tags, prune_images
from tests.builders import T0
from tests.gitutil import commit_files, make_repo


def image(app: str | None, n: int, *tags: str) -> ImageInfo:
    labels = {"trueup.image-instance": "t", **({"trueup.app": app} if app else {})}
    tags = tags or (f"trueup/{app}:v{n}",)
    return ImageInfo(f"sha256:{app}{n}", tags, labels, T0 + timedelta(minutes=n), size=10)


def ids(images: list[ImageInfo]) -> list[str]:
    return [i.id for i in images]


def test_all_but_the_newest_k_of_each_app_go() -> None:
    """Per app, the ``keep`` newest images stay, whatever order the engine lists them in."""
    images = [image("web", n) for n in (3, 1, 5, 2, 4)] + [image("api", 1), image("api", 2)]
    assert ids(images_to_remove(images, in_use=(), keep=3)) == ["sha256:web1", "sha256:web2"]
    assert ids(images_to_remove(images, in_use=(), keep=1)) == [
        "sha256:api1",
        "sha256:web1",
        "sha256:web2",
        "sha256:web3",
        "sha256:web4",
    ]


def test_an_image_in_use_stays_by_tag_or_id() -> None:
    """An image a container runs (named by tag or by id) is never chosen, even with keep 0."""
    images = [image("web", n) for n in (1, 2, 3)]
    chosen = images_to_remove(images, in_use={"trueup/web:v1", "sha256:web3"}, keep=0)
    assert ids(chosen) == ["sha256:web2"]


def test_an_image_without_an_app_label_is_never_chosen() -> None:
    """Only images trueup's builds labelled with an app are candidates."""
    assert images_to_remove([image(None, 1, "trueup/web:foo")], in_use=(), keep=0) == []


def test_only_the_tags_trueup_gave_are_removed() -> None:
    """``trueup/<app>:...`` and its registry copy are trueup's; a tag added by hand is not."""
    tags = ("reg:5000/trueup/web:v1", "mine/web:keep", "trueup/web:v1", "trueup/webx:v1")
    assert own_tags(image("web", 1, *tags)) == ("reg:5000/trueup/web:v1", "trueup/web:v1")


MANIFEST = """\
apiVersion: trueup/v1
kind: App
metadata: {name: site}
spec:
  build: {context: services/site}
"""
DOCKERFILE = "FROM busybox:1.36\nCOPY index.html /index.html\n"


def reconciler(repo: Path, state: Path, runtime: FakeRuntime, keep: int) -> Reconciler:
    source = GitSource(str(repo), state_dir=state)
    return Reconciler(source, ContainerTarget(runtime), instance="t", image_keep=keep)


def tags(runtime: FakeRuntime) -> set[str]:
    return {t for i in runtime.built.values() for t in i.tags}


async def test_builds_beyond_keep_are_removed_and_counted(tmp_path: Path) -> None:
    """Each pass that builds removes the unused images beyond ``image_keep``; the pass result
    says what went and the metrics count it."""
    repo = tmp_path / "repo"
    files = {"apps/site.yaml": MANIFEST, "services/site/Dockerfile": DOCKERFILE}
    make_repo(repo, {**files, "services/site/index.html": "v0\n"})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    rec = reconciler(repo, tmp_path / "state", runtime, keep=1)
    metrics = Metrics(process=False)
    running = []
    for n in range(1, 4):
        commit_files(repo, {"services/site/index.html": f"v{n}\n"}, f"v{n}")
        result = await rec.run_pass()
        metrics.pass_finished(result, outcome="changed", duration_s=0.1, error=None)
        running.append(result.desired.apps["site"].image if result.desired else "")
    assert tags(runtime) == {running[-1]}  # keep 1: the one in use
    assert result.images is not None and result.images.removed == (running[-2],)
    assert metrics.registry.get_sample_value("trueup_images_pruned_total") == 2.0
    assert (metrics.registry.get_sample_value("trueup_image_bytes_freed_total") or 0) > 0


async def test_no_image_is_removed_in_a_pass_where_a_manifest_failed_to_load(
    tmp_path: Path,
) -> None:
    """A pass with a broken manifest builds and rolls the valid app but removes no image."""
    repo = tmp_path / "repo"
    files = {"apps/site.yaml": MANIFEST, "services/site/Dockerfile": DOCKERFILE}
    make_repo(repo, {**files, "services/site/index.html": "v1\n"})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    rec = reconciler(repo, tmp_path / "state", runtime, keep=0)
    await rec.run_pass()
    first = tags(runtime)
    broken = {"apps/broken.yaml": "apiVersion: trueup/v1\nkind: App\nspec: {replcas: 1}\n"}
    commit_files(repo, {**broken, "services/site/index.html": "v2\n"}, "v2 and a broken file")
    result = await rec.run_pass()
    assert result.problems and any(o.build == "built" for o in result.outcomes)
    assert result.images is None
    assert first < tags(runtime)  # the old image is still there beside the new one


def test_image_keep_is_a_setting_of_trueup_run() -> None:
    """``image_keep`` comes from the config, ``TRUEUP_IMAGE_KEEP`` or ``--image-keep`` (default
    3); a negative count is refused naming the key."""
    assert load_settings(None, {}, env={}).image_keep == 3
    assert load_settings(None, {}, env={"TRUEUP_IMAGE_KEEP": "5"}).image_keep == 5
    assert load_settings(None, {"image_keep": "0"}, env={}).image_keep == 0
    with pytest.raises(ConfigError, match="image_keep"):
        load_settings(None, {"image_keep": "-1"}, env={})


async def test_an_instance_that_built_nothing_asks_the_engine_to_prune_nothing() -> None:
    """With no image built for the instance (the list shows dangling ones too), the stage
    makes its one list request and no prune request: an update of an image app costs the
    engine nothing more."""
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    report = await prune_images(runtime, in_use={"busybox:1.36"}, keep=3)
    assert report.removed == () and report.bytes_freed == 0 and report.error is None
    assert runtime.calls["list_images"] == 1 and runtime.calls["prune_images"] == 0
