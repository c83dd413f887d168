"""trueup on the three-node lab: one manager, two workers, a registry, Caddy on the overlay.

One deployment for the module (the tests build on each other, in file order): apps with
``endpointMode: dnsrr`` (the lab's kernel has no IPVS, so virtual IPs carry no traffic),
routes through a Caddy container attached to the instance's overlay network on the manager
(``caddy_lab``, shared with the compose module), built images pushed to the lab's registry
(``swarm_registry``). A worker's engine is stopped and
started again, then the manager's, while `trueup run` drives the swarm.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.engines import Node
from tests.swarm_lab import SwarmLab
from tests.targets.swarm.caddy_lab import (
    Load,
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

HOST = "web.lab.test"

# A web server with a graceful stop: on SIGTERM it keeps serving for 2 s, then exits (as a
# real server drains), so a rolling update can take it out of the proxy before it goes.
WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: web}}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - |
      mkdir -p /www && echo "{version} $(hostname)" > /www/index.html && echo ok > /www/healthz
      httpd -f -p 8080 -h /www & pid=$!
      trap 'sleep 2; kill $pid; exit 0' TERM
      wait $pid
  replicas: {replicas}
  ports: [{{name: http, containerPort: 8080}}]
  routes: [{{host: {host}, path: /, port: http}}]
  healthCheck: {{http: {{path: /healthz, port: http}}, interval: 1s, timeout: 1s, retries: 2}}
  update: {{strategy: start-first}}
  init: true
  stopGracePeriod: 5s
  swarm: {{endpointMode: dnsrr}}
"""

# Healthy 4 s after it starts: a replacement task is visibly on its way (Progressing).
SLOW = """\
apiVersion: trueup/v1
kind: App
metadata: {name: slow}
spec:
  image: busybox:1.36
  command: [sh, -c, "sleep 4; touch /tmp/ready; exec sleep 3600"]
  replicas: 3
  healthCheck:
    {exec: [test, -e, /tmp/ready], interval: 1s, timeout: 1s, retries: 2, startPeriod: 8s}
  init: true
  stopGracePeriod: 1s
  swarm: {endpointMode: dnsrr}
"""

HELLO = """\
apiVersion: trueup/v1
kind: App
metadata: {name: hello}
spec:
  build: {context: hello}
  replicas: 3
  init: true
  stopGracePeriod: 1s
  swarm: {endpointMode: dnsrr}
"""

HELLO_DOCKERFILE = """\
FROM busybox:1.36
RUN echo "built {tag}" > /hello.txt
CMD ["sh", "-c", "cat /hello.txt; exec sleep 3600"]
"""


def web(version: str = "v1", replicas: int = 3) -> str:
    return WEB.format(version=version, replicas=replicas, host=HOST)


@pytest.fixture(scope="module")
def lab_deployment(
    swarm_engine: SwarmEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwarmDeployment]:
    """The module's deployment, routed through Caddy on the overlay (`caddy_deployment`)."""
    with caddy_deployment(swarm_engine, tmp_path_factory.mktemp("multinode")) as deployment:
        yield deployment


def status_of(deployment: SwarmDeployment, app: str) -> dict[str, Any]:
    result = deployment.trueup("status", "--output", "json", check=True)
    return next(a for a in json.loads(result.stdout)["apps"] if a["name"] == app)


def versions(deployment: SwarmDeployment) -> dict[str, tuple[str, int]]:
    """Service name → (id, version) of the instance's services."""
    rows = deployment.api.services(filters={"label": f"trueup.instance={deployment.instance}"})
    return {r["Spec"]["Name"]: (r["ID"], r["Version"]["Index"]) for r in rows}


def test_create_puts_tasks_on_every_node_and_caddy_reaches_each(
    lab_deployment: SwarmDeployment,
) -> None:
    """Three dnsrr replicas land on the manager and both workers; Caddy (on the manager)
    proxies to each task's own overlay address, and every one of them answers through it."""
    d = lab_deployment
    d.commit({"apps/web.yaml": web(), "apps/slow.yaml": SLOW})
    d.trueup("apply", check=True)
    assert d.task_nodes("web") == {n.name for n in d.lab.nodes}
    assert d.task_nodes("slow") == {n.name for n in d.lab.nodes}
    spec = d.service("web")["Spec"]
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    tasks = running(d, "web")
    addresses = sorted(f"{task_address(t, f'trueup-{d.instance}')}:8080" for t in tasks)
    assert caddy_upstreams(d) == addresses
    hosts = {t["Status"]["ContainerStatus"]["ContainerID"][:12] for t in tasks}
    answers = {unix_get(proxy(d), HOST)[1] for _ in range(12)}
    assert answers == {f"v1 {h}" for h in hosts}  # round robin over all three nodes' tasks


def test_a_build_is_pushed_to_the_registry_and_pulled_by_the_workers(
    lab_deployment: SwarmDeployment,
) -> None:
    """An app built from git on the manager runs on the workers too: its service names the
    image in the lab's registry; before, no worker had it; the registry served its blobs to
    both workers; after, both workers' engines hold it and run a task of it."""
    d, lab = lab_deployment, lab_deployment.lab
    tag = uuid.uuid4().hex[:8]
    d.commit({"apps/hello.yaml": HELLO, "hello/Dockerfile": HELLO_DOCKERFILE.format(tag=tag)})
    for worker in lab.workers:
        assert not [i for i in images(worker) if "hello" in i]
    mark = lab.registry_lines()
    d.trueup("apply", check=True)
    image = d.service("hello")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(f"{lab.registry}/trueup/hello:"), image
    assert d.task_nodes("hello") == {n.name for n in lab.nodes}
    pulls = lab.blob_pulls(since=mark)
    assert {w.address for w in lab.workers} <= set(pulls), pulls
    for worker in lab.workers:
        assert [i for i in images(worker) if i.startswith(f"{lab.registry}/trueup/hello:")]
    logs = d.trueup("logs", "hello", check=True).stdout
    assert logs.count(f"built {tag}") == 3


def test_rolling_update_across_nodes_fails_no_request_under_load(
    lab_deployment: SwarmDeployment,
) -> None:
    """A start-first rolling update of the three tasks, with steady requests through Caddy
    throughout: not one fails; answers move from v1 to v2; Caddy ends on the new tasks."""
    d = lab_deployment
    before = {t["ID"] for t in running(d, "web")}
    d.commit({"apps/web.yaml": web("v2")})
    with Load(proxy(d), HOST) as load:
        time.sleep(1)
        d.trueup("apply", check=True)
        time.sleep(1)
    assert load.failures == [], load.failures[:5]
    assert len(load.answers) > 50
    assert {a.split()[0] for a in load.answers} == {"v1", "v2"}
    assert load.answers[-1].startswith("v2")
    tasks = running(d, "web")
    assert len(tasks) == 3 and before.isdisjoint(t["ID"] for t in tasks)
    assert d.service("web")["Spec"]["UpdateConfig"]["Order"] == "start-first"
    expected = sorted(f"{task_address(t, f'trueup-{d.instance}')}:8080" for t in tasks)
    assert caddy_upstreams(d) == expected


@contextlib.contextmanager
def trueup_run(d: SwarmDeployment) -> Iterator[subprocess.Popen[str]]:
    """`trueup run` on the deployment, stopped with SIGTERM afterwards. The resync is a
    minute: what happens sooner comes from a commit (seen at once) or an engine event."""
    cmd = [sys.executable, "-m", "controller", "run", "--runtime", "swarm", "--listen", "off"]
    cmd += ["--repo", str(d.repo), "--instance", d.instance, "--state-dir", str(d.state)]
    cmd += ["--secrets-dir", str(d.secrets), "--interval", "60s"]
    log = (d.state.parent / f"run-{uuid.uuid4().hex[:6]}.log").open("w+")
    env = {**d.env, "TRUEUP_LOG_FORMAT": "json"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        time.sleep(1)
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"trueup run exited {proc.returncode}: {log.read()[-3000:]}")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.seek(0)
        proc.output = log.read()  # type: ignore[attr-defined]
        log.close()


@pytest.mark.slow
def test_a_lost_worker_is_rescheduled_and_its_return_changes_nothing(
    lab_deployment: SwarmDeployment,
) -> None:
    """A worker's engine stops: Swarm moves its tasks, `trueup status` shows an app
    Progressing then Healthy with no action of trueup's, `trueup run` follows the moved tasks
    in Caddy and applies a commit meanwhile; the worker comes back: no service changes."""
    d, lab = lab_deployment, lab_deployment.lab
    lost = next(w for w in reversed(lab.workers) if w.name in d.task_nodes("web"))
    assert lost.name in d.task_nodes("slow")
    with trueup_run(d) as proc:
        wait_for(lambda: d.trueup("diff").returncode == 0, 60, "run in sync")
        before = versions(d)
        assert status_of(d, "slow")["health"] == "Healthy"
        lab.stop_engine(lost)
        seen: list[str] = []

        def healthy_again() -> bool:
            health = status_of(d, "slow")["health"]
            if not seen or seen[-1] != health:
                seen.append(health)
            return health == "Healthy" and "Progressing" in seen

        wait_for(healthy_again, 120, "slow Progressing, then Healthy")
        assert versions(d) == before  # Swarm rescheduled; trueup updated nothing
        for app in ("web", "slow"):
            assert lost.name not in d.task_nodes(app)
            assert len(running(d, app)) == 3
        net = f"trueup-{d.instance}"
        expected = sorted(f"{task_address(t, net)}:8080" for t in running(d, "web"))
        wait_for(lambda: caddy_upstreams(d) == expected, 30, "caddy follows the moved task")
        assert {unix_get(proxy(d), HOST)[0] for _ in range(6)} == {200}

        d.commit({"apps/web.yaml": web("v2", replicas=4)}, "scale while a node is down")
        wait_for(lambda: len(running(d, "web")) == 4, 60, "run scales web to 4")
        scaled = versions(d)

        lab.start_engine(lost)
        wait_for(lambda: node_ready(lab, lost), 60, f"{lost.name} ready again")
        d.commit({"README.md": "the node is back\n"}, "a pass with the node back")
        time.sleep(6)  # that pass, and Swarm's own settling with the node back
        assert versions(d) == scaled  # nothing flapped: no service update by trueup
        assert proc.poll() is None
    assert d.trueup("diff").returncode == 0
    assert seen[-1] == "Healthy" and "Progressing" in seen, seen


def node_ready(lab: SwarmLab, node: Node) -> bool:
    api = lab.manager.api()
    try:
        rows = api.nodes(filters={"name": node.name})
        return bool(rows) and rows[0]["Status"]["State"] == "ready"
    finally:
        api.close()


@pytest.mark.slow
def test_manager_engine_restart_under_run_recreates_no_service(
    lab_deployment: SwarmDeployment,
) -> None:
    """The manager's engine restarts while `trueup run` talks to it: the run backs off,
    recovers, recreates no service (same ids and versions), and applies the next commit."""
    d, lab = lab_deployment, lab_deployment.lab
    with trueup_run(d) as proc:
        wait_for(lambda: d.trueup("diff").returncode == 0, 60, "run in sync")
        before = versions(d)
        lab.stop_engine(lab.manager)
        time.sleep(3)
        assert proc.poll() is None
        lab.start_engine(lab.manager)
        wait_for(lambda: all(node_ready(lab, n) for n in lab.nodes), 60, "swarm ready")
        wait_for(lambda: d.trueup("diff").returncode == 0, 60, "in sync after the restart")
        assert versions(d) == before
        d.commit({"apps/web.yaml": web("v2", replicas=2)}, "scale down after the restart")
        wait_for(lambda: len(running(d, "web")) == 2, 60, "run scales web to 2")
        assert proc.poll() is None
        wait_for(lambda: unix_get(proxy(d), HOST)[0] == 200, 30, "caddy serves again")
    assert proc.returncode == 0
    output = proc.output  # type: ignore[attr-defined]
    assert "events_stream_failed" in output or "reconcile_failed" in output, output[-3000:]
    after = versions(d)
    assert {n: i for n, (i, _) in after.items()} == {n: i for n, (i, _) in before.items()}
