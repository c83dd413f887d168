"""A manifest must not reach beyond its instance or the host's policy, on a real dockerd.

Each test drives the CLI as an operator would and checks the engine with the docker SDK:
host ports need ``--allow-host-port``, named volumes are the instance's own (scoped engine
names, labels checked, old-name volumes of the instance kept in use), and bind paths are
resolved on the host so a symlink cannot lead out of an allowed path.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

SLEEPER = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  init: true
  stopGracePeriod: 1s
{extra}"""


def sleeper(name: str, extra: str = "") -> str:
    return SLEEPER.format(name=name, extra="".join(f"  {line}\n" for line in extra.splitlines()))


@dataclass
class Host:
    """A deployment repository, the instance trueup manages it under, and the engine."""

    repo: Path
    instance: str
    state: Path
    client: docker.DockerClient

    def trueup(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args, "--repo", str(self.repo)]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    def commit(self, files: dict[str, str]) -> str:
        return commit_files(self.repo, files, "change")

    def containers(self, app: str) -> list[docker.models.containers.Container]:
        labels = [f"trueup.instance={self.instance}", f"trueup.app={app}"]
        return self.client.containers.list(ignore_removed=True, all=True, filters={"label": labels})


@pytest.fixture
def host(tmp_path: Path, instance: str) -> Iterator[Host]:
    client = docker.from_env()
    make_repo(tmp_path / "repo", {"README.md": "deployment repo\n"})
    try:
        yield Host(tmp_path / "repo", instance, tmp_path / "state", client)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- host ports ------------------------------------------------------------------------


def test_host_port_needs_the_allowing_flag(host: Host) -> None:
    """Without ``--allow-host-port`` the app is refused naming the field and nothing is
    published; with a range that holds the port it is published on the given ``hostIp``."""
    port = free_port()
    ports = f"ports: [{{name: p, containerPort: 8080, hostPort: {port}, hostIp: 127.0.0.1}}]"
    host.commit({"apps/pub.yaml": sleeper("pub", ports)})
    refused = host.trueup("apply")
    assert refused.returncode != 0
    assert f"spec.ports[0].hostPort: host port {port} is not allowed" in refused.stdout
    assert host.containers("pub") == []
    allowed = host.trueup("apply", "--allow-host-port", f"{port - 1}-{port + 1}")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    (container,) = host.containers("pub")
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}


# -- named volumes ---------------------------------------------------------------------


@pytest.fixture
def volumes(host: Host) -> Iterator[list[str]]:
    """Names of volumes a test creates itself; they and the instance's volumes are removed."""
    made: list[str] = []
    yield made
    owned = host.client.volumes.list(filters={"label": f"trueup.instance={host.instance}"})
    for name in {*made, *(v.name for v in owned)}:
        for c in host.client.containers.list(
            ignore_removed=True, all=True, filters={"volume": name}
        ):
            if c.labels.get("trueup.instance") == host.instance:
                c.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            host.client.volumes.get(name).remove(force=True)


VOLUME = "volumes: [{name: data, mountPath: /data}]"


def mounted(container: docker.models.containers.Container) -> list[str]:
    return [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]


def read_file(container: docker.models.containers.Container) -> str:
    code, out = container.exec_run(["cat", "/data/file"])
    return out.decode().strip() if code == 0 else ""


def test_two_instances_never_share_a_volume(host: Host, volumes: list[str], tmp_path: Path) -> None:
    """The same manifest under two instances mounts two volumes, each named
    ``trueup-<instance>_data`` and labelled with its instance: one never sees the other's data."""
    other = Host(host.repo, f"{host.instance}-b", tmp_path / "state-b", host.client)
    host.commit({"apps/db.yaml": sleeper("db", VOLUME)})
    try:
        assert host.trueup("apply").returncode == 0
        assert other.trueup("apply").returncode == 0
        (mine,) = host.containers("db")
        (theirs,) = other.containers("db")
        assert mounted(mine) == [f"trueup-{host.instance}_data"]
        assert mounted(theirs) == [f"trueup-{other.instance}_data"]
        label = host.client.volumes.get(mounted(mine)[0]).attrs["Labels"]
        assert label == {"trueup.instance": host.instance}
        mine.exec_run(["sh", "-c", "echo mine > /data/file"])
        assert read_file(theirs) == ""
    finally:
        for c in other.containers("db"):
            c.remove(force=True)
        volumes.append(f"trueup-{other.instance}_data")
        for n in host.client.networks.list(filters={"label": f"trueup.instance={other.instance}"}):
            n.remove()


def test_a_volume_of_another_owner_is_refused(host: Host, volumes: list[str]) -> None:
    """Naming another project's volume (no trueup label), or finding the instance's scoped name
    taken by another instance's volume, fails the app naming the volume; nothing is mounted."""
    foreign = f"pgdata-{host.instance}"
    volumes.append(foreign)
    host.client.volumes.create(foreign, labels={"project": "someone-else"})
    host.commit({"apps/db.yaml": sleeper("db", f"volumes: [{{name: {foreign}, mountPath: /d}}]")})
    refused = host.trueup("apply")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"volume {foreign}: exists but was not created by trueup" in refused.stdout
    assert host.containers("db") == []

    taken = f"trueup-{host.instance}_data"
    volumes.append(taken)
    host.client.volumes.create(taken, labels={"trueup.instance": "another-instance"})
    host.commit({"apps/db.yaml": sleeper("db", VOLUME)})
    refused = host.trueup("apply")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"volume {taken}: exists but is owned by instance another-instance" in refused.stdout
    assert host.containers("db") == []


def test_upgrade_keeps_the_volume_under_its_old_name(host: Host, volumes: list[str]) -> None:
    """A volume an earlier trueup created under the manifest's bare name (labelled with this
    instance) stays in use, data and all: no empty scoped volume is made beside it, and a
    later update of the app mounts it again."""
    old = f"data-{host.instance}"
    volumes.append(old)
    host.client.volumes.create(old, labels={"trueup.instance": host.instance})
    host.client.containers.run(
        "busybox:1.36", ["sh", "-c", "echo kept > /data/file"], volumes={old: {"bind": "/data"}},
        remove=True,
    )  # fmt: skip
    volume = f"volumes: [{{name: {old}, mountPath: /data}}]"
    host.commit({"apps/db.yaml": sleeper("db", volume)})
    assert host.trueup("apply").returncode == 0
    (db,) = host.containers("db")
    assert mounted(db) == [old] and read_file(db) == "kept"
    host.commit({"apps/db.yaml": sleeper("db", volume + "\nenv: {A: '1'}")})
    assert host.trueup("apply").returncode == 0
    (db,) = host.containers("db")
    assert mounted(db) == [old] and read_file(db) == "kept"
    assert host.client.volumes.list(filters={"name": f"trueup-{host.instance}_"}) == []


# -- bind paths ------------------------------------------------------------------------


def bind(path: Path) -> str:
    return f"binds: [{{hostPath: {path}, mountPath: /mnt, readOnly: true}}]"


def test_a_symlink_out_of_the_allowed_path_is_refused(host: Host, tmp_path: Path) -> None:
    """``/allowed/x -> /etc`` passes the string check but would mount the host's /etc: the
    controller resolves it, refuses the app naming where it leads, and creates nothing."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "x").symlink_to("/etc")
    host.commit({"apps/peek.yaml": sleeper("peek", bind(allowed / "x"))})
    refused = host.trueup("apply", "--allow-bind", str(allowed))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"bind {allowed / 'x'}: resolves to /etc through a symlink, outside" in refused.stdout
    assert host.containers("peek") == []


def test_a_symlink_inside_the_allowed_path_is_mounted_resolved(host: Host, tmp_path: Path) -> None:
    """A link that stays below the allowed path (``current -> releases/2``) is fine; the
    engine is given the resolved path, so the container sees that release."""
    allowed = tmp_path / "allowed"
    (allowed / "releases" / "2").mkdir(parents=True)
    (allowed / "releases" / "2" / "file").write_text("two\n")
    (allowed / "current").symlink_to(allowed / "releases" / "2")
    host.commit({"apps/site.yaml": sleeper("site", bind(allowed / "current"))})
    result = host.trueup("apply", "--allow-bind", str(allowed))
    assert result.returncode == 0, result.stdout + result.stderr
    (site,) = host.containers("site")
    (mount,) = [m for m in site.attrs["Mounts"] if m["Type"] == "bind"]
    assert mount["Source"] == str((allowed / "releases" / "2").resolve())
    assert site.exec_run(["cat", "/mnt/file"]).output == b"two\n"
