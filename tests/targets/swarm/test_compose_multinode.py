"""A compose project from git on the three-node lab (one manager, two workers, a registry,
Caddy on the overlay): its services deploy as Swarm services with tasks on the workers too,
the built image is pushed to the lab's registry and pulled by the workers, a start-first
rolling update across the nodes fails no request through Caddy, and a service removed from
the file is pruned while its named volume stays.

One deployment for the module (the tests build on each other, in file order), routed through
``caddy_lab``'s Caddy, which is attached to the project's network once trueup made it (a
compose project's services live on its networks, not on the instance's).
``deploy.endpoint_mode: dnsrr`` (compose's own key) because the lab's kernel has no IPVS.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest

from tests.engines import Node
from tests.targets.swarm.caddy_lab import (
    Load,
    attach_caddy,
    caddy_deployment,
    caddy_upstreams,
    images,
    proxy,
    running,
    task_address,
    unix_get,
    wait_for,
)
from tests.targets.swarm.conftest import SwarmDeployment, SwarmEngine

pytestmark = [pytest.mark.integration]

HOST = "shop.lab.test"

# web: built from the repo, three replicas, routed; on SIGTERM it keeps serving for 2 s (as a
# real server drains) so a rolling update takes it out of Caddy before it goes.
# db: a named volume and a health check that passes 2 s after start; web waits for it.
COMPOSE = """\
name: {project}
services:
  web:
    build: ./web
    environment: {{VERSION: {version}}}
    expose: ["8080"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
      interval: 1s
      timeout: 1s
      retries: 2
{depends}    init: true
    stop_grace_period: 5s
    deploy: {{replicas: 3, endpoint_mode: dnsrr}}
    x-trueup:
      routes: [{{host: {host}, path: /, port: 8080}}]
      update: {{strategy: start-first}}
{db}"""

DEPENDS = "    depends_on:\n      db: {condition: service_healthy}\n"

DB = """\
  db:
    image: busybox:1.36
    command: ["sh", "-c", "date >> /data/boots; sleep 2; touch /data/ready; exec sleep 3600"]
    volumes: [db-data:/data]
    healthcheck: {test: ["CMD", "test", "-e", "/data/ready"], interval: 1s, retries: 3}
    init: true
    stop_grace_period: 1s
    deploy: {endpoint_mode: dnsrr}
volumes:
  db-data: {}
"""

DOCKERFILE = """\
FROM busybox:1.36
COPY serve.sh /serve.sh
CMD ["sh", "/serve.sh"]
"""

SERVE = """\
mkdir -p /www && echo "$VERSION $(hostname)" > /www/index.html && echo ok > /www/healthz
httpd -f -p 8080 -h /www & pid=$!
trap 'sleep 2; kill $pid; exit 0' TERM
wait $pid
"""


@dataclass
class Shop:
    """The module's compose project on the lab: its deployment and its project name."""

    d: SwarmDeployment
    project: str

    def files(self, version: str = "v1", with_db: bool = True) -> dict[str, str]:
        text = COMPOSE.format(
            project=self.project,
            version=version,
            host=HOST,
            depends=DEPENDS if with_db else "",
            db=DB if with_db else "",
        )
        return {"stacks/shop/compose.yaml": text}

    def network(self, d: SwarmDeployment) -> str:
        """The engine name of the project's default network."""
        return f"trueup-{d.instance}-{self.project}-default"


@pytest.fixture(scope="module")
def shop(swarm_engine: SwarmEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp = tmp_path_factory.mktemp("multinode-compose")
    with caddy_deployment(swarm_engine, tmp) as deployment:
        yield Shop(deployment, f"s{uuid.uuid4().hex[:8]}")


def seconds(stamp: str) -> float:
    """An engine timestamp (RFC 3339, nanoseconds) as seconds since the epoch."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")


def volumes(node: Node) -> list[str]:
    api = node.api()
    try:
        return [v["Name"] for v in api.volumes().get("Volumes") or []]
    finally:
        api.close()


def test_a_compose_project_deploys_over_the_nodes_with_its_build_pulled_by_workers(
    shop: Shop,
) -> None:
    """`trueup apply --runtime swarm` on a compose file: web's three tasks on the manager and
    both workers, its image built on the manager, pushed to the registry and pulled by both
    workers (which had no copy before); web created only once db was healthy; db mounts
    `<project>_db-data`; Caddy proxies to each web task, and each answers through it."""
    d, lab, p = shop.d, shop.d.lab, shop.project
    d.commit({**shop.files(), "stacks/shop/web/Dockerfile": DOCKERFILE})
    d.commit({"stacks/shop/web/serve.sh": SERVE}, "the web server")
    for worker in lab.workers:
        assert not [i for i in images(worker) if f"/{p}-web:" in i]
    mark = lab.registry_lines()
    applied = d.trueup("apply", check=True)
    for service in ("db", "web"):
        assert f"ok     {p}-{service} create" in applied.stdout, applied.stdout
    web = d.service(f"{p}-web")
    image = web["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(f"{lab.registry}/trueup/{p}-web:"), image
    assert d.task_nodes(f"{p}-web") == {n.name for n in lab.nodes}
    assert {w.address for w in lab.workers} <= set(lab.blob_pulls(since=mark))
    for worker in lab.workers:
        assert [i for i in images(worker) if i.startswith(f"{lab.registry}/trueup/{p}-web:")]
    assert web["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    assert web["Spec"]["UpdateConfig"]["Order"] == "start-first"
    db = d.service(f"{p}-db")
    mounts = db["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert [m["Source"] for m in mounts] == [f"{p}_db-data"]
    (db_task,) = running(d, f"{p}-db")
    # a task with a health check turns running once healthy (db: 2 s after it starts); web
    # is made only after that
    assert seconds(web["CreatedAt"]) > seconds(db_task["Status"]["Timestamp"])
    network = shop.network(d)
    tasks = running(d, f"{p}-web")
    assert caddy_upstreams(d) == sorted(f"{task_address(t, network)}:8080" for t in tasks)
    attach_caddy(d, network)
    hosts = {t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in tasks}
    expected = {f"v1 {h}" for h in hosts}

    def every_task_answers() -> bool:
        # round robin over all three nodes' tasks; a freshly connected Caddy reaches the tasks
        # on the other nodes once the overlay's peers are known there (gossip: a few seconds)
        got = {unix_get(proxy(d), HOST) for _ in range(12)}
        return {body for status, body in got if status == 200} == expected

    wait_for(every_task_answers, 30, "caddy reaches every web task")
    assert d.trueup("diff").returncode == 0


def test_a_rolling_update_of_the_built_service_fails_no_request_under_load(shop: Shop) -> None:
    """A changed compose service rolls start-first across the three nodes, with steady
    requests through Caddy throughout: not one fails; answers move from v1 to v2."""
    d, p = shop.d, shop.project
    before = {t["ID"] for t in running(d, f"{p}-web")}
    d.commit(shop.files(version="v2"), "web v2")
    with Load(proxy(d), HOST) as load:
        time.sleep(1)
        d.trueup("apply", check=True)
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert len(load.answers) > 50
    assert {a.split()[0] for a in load.answers} == {"v1", "v2"}
    assert load.answers[-1].startswith("v2")
    tasks = running(d, f"{p}-web")
    assert len(tasks) == 3 and before.isdisjoint(t["ID"] for t in tasks)
    network = shop.network(d)
    assert caddy_upstreams(d) == sorted(f"{task_address(t, network)}:8080" for t in tasks)


def test_a_service_removed_from_the_file_is_pruned_and_its_volume_kept(shop: Shop) -> None:
    """db leaves the compose file: its service goes, web stays and serves; the volume
    `<project>_db-data` stays on the node that ran db."""
    d, p = shop.d, shop.project
    (db_task,) = running(d, f"{p}-db")
    node = d.lab.node_of(db_task["NodeID"])
    volume = f"{p}_db-data"
    assert volume in volumes(node)
    d.commit(shop.files(version="v2", with_db=False), "db goes")
    applied = d.trueup("apply", check=True)
    assert f"- {p}-db  delete" in applied.stdout, applied.stdout
    assert f"{d.instance}-{p}-db" not in d.services()
    assert f"{d.instance}-{p}-web" in d.services()
    assert volume in volumes(node)
    assert {unix_get(proxy(d), HOST)[0] for _ in range(6)} == {200}
    assert d.trueup("diff").returncode == 0
