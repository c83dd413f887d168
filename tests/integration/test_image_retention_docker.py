"""Image retention against a real dockerd: `trueup apply` (a subprocess, commits made with the
git CLI) removes the images it built for the instance that no container uses, beyond the
newest ``--image-keep`` per app, and nothing else; the engine itself is checked with the SDK.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

BUILT = """\
apiVersion: trueup/v1
kind: App
metadata: {name: site}
spec:
  build: {context: services/site}
  init: true
  stopGracePeriod: 1s
"""

DOCKERFILE = 'FROM busybox:1.36\nCOPY index.html /www/index.html\nCMD ["sleep", "3600"]\n'


@dataclass
class Deployment:
    """A git repo with one built app, managed by trueup under a unique instance."""

    repo: Path
    instance: str
    state: Path
    client: docker.DockerClient
    seen: list[str] = field(default_factory=list)
    """Every image the app ran (`running_image`), removed at the end."""

    def trueup(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args]
        cmd += [] if args[0] == "status" else ["--repo", str(self.repo)]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert result.returncode in (0, 1), f"{args}:\n{result.stdout}\n{result.stderr}"
        return result

    def commit_site(self, content: str) -> None:
        commit_files(self.repo, {"services/site/index.html": content}, f"site {content}")

    def images(self) -> set[str]:
        """Tags of the images trueup built for this instance's app ``site``."""
        label = [f"trueup.image-instance={self.instance}", "trueup.app=site"]
        return {t for i in self.client.images.list(filters={"label": label}) for t in i.tags}

    def running_image(self) -> str:
        label = [f"trueup.instance={self.instance}", "trueup.app=site"]
        (container,) = self.client.containers.list(
            ignore_removed=True, all=True, filters={"label": label}
        )
        self.seen.append(str(container.attrs["Config"]["Image"]))
        return self.seen[-1]


@pytest.fixture
def deployment(tmp_path: Path, instance: str) -> Iterator[Deployment]:
    client = docker.from_env()
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/site.yaml": BUILT, "services/site/Dockerfile": DOCKERFILE})
    deployment = Deployment(repo, instance, tmp_path / "state", client)
    try:
        yield deployment
    finally:
        label = f"trueup.instance={instance}"
        for c in client.containers.list(ignore_removed=True, all=True, filters={"label": label}):
            c.remove(force=True)
        built = client.images.list(filters={"label": f"trueup.image-instance={instance}"})
        for image in built:
            client.images.remove(image.id, force=True)
        for tag in deployment.seen:  # also those an engine without retention left behind
            if client.images.list(name=tag):
                client.images.remove(tag, force=True)
        client.close()


def test_five_builds_keep_the_newest_and_a_revert_reuses_its_image(
    deployment: Deployment,
) -> None:
    """Five commits that each change the build context leave at most K+1 images of the app
    (K=3, the default); reverting to the second-newest builds nothing and runs its image; an
    image of the same name trueup did not build (no label) is untouched; `trueup status site`
    lists the kept images newest first, the one in use marked."""
    client = deployment.client
    foreign = f"trueup/site:foo-{deployment.instance}"  # built by hand: no trueup label
    client.images.build(
        fileobj=io.BytesIO(f"FROM busybox:1.36\nLABEL test={deployment.instance}\n".encode()),
        tag=foreign,
        rm=True,
    )
    try:
        tags: list[str] = []
        for n in range(1, 6):
            deployment.commit_site(f"v{n} {deployment.instance}\n")
            out = deployment.trueup("apply").stdout
            assert "(build trueup/site:" in out, out
            tags.append(deployment.running_image())
            assert len(deployment.images()) <= 3 + 1
        assert [t for t in tags if client.images.list(name=t)] == tags[-3:]  # oldest two gone
        assert deployment.images() == set(tags[-3:])
        assert client.images.get(foreign).tags == [foreign]
        deployment.commit_site(f"v4 {deployment.instance}\n")  # revert to the second-newest
        diff = deployment.trueup("diff").stdout
        assert "update" in diff and "build" not in diff, diff
        applied = deployment.trueup("apply").stdout
        assert "build" not in applied, applied
        assert deployment.running_image() == tags[3]
        assert deployment.images() == set(tags[-3:])
        shown = json.loads(deployment.trueup("status", "site", "--output", "json").stdout)
        assert [(i["tags"], i["in_use"]) for i in shown["images"]] == [
            ([tags[4]], False),
            ([tags[3]], True),
            ([tags[2]], False),
        ]
    finally:
        client.images.remove(foreign, force=True)


def test_an_image_in_use_is_never_removed(deployment: Deployment) -> None:
    """With --image-keep 0, the image the app's container runs stays, and so does an older
    one a container outside trueup runs; an unused older one goes."""
    client = deployment.client
    tags: list[str] = []
    for n in range(1, 4):
        deployment.commit_site(f"v{n} {deployment.instance}\n")
        deployment.trueup("apply", "--image-keep", "0")
        tags.append(deployment.running_image())
        if n == 1:  # someone runs the first image by hand, outside trueup
            other = client.containers.run(tags[0], ["sleep", "3600"], detach=True)
    try:
        assert [t for t in tags if client.images.list(name=t)] == [tags[0], tags[2]]
        assert deployment.images() == {tags[0], tags[2]}  # tags[1] was used by no one
        assert client.containers.get(other.id).status == "running"
    finally:
        other.remove(force=True)
