"""App networks on a swarm: overlay networks ``trueup-<instance>-<name>`` (attachable,
labelled), the service's tasks on them with their aliases, names resolving only where
networks are shared, and a network no service joins any more removed by the pass."""

from __future__ import annotations

import time

import pytest

from tests.targets.swarm.conftest import SwarmDeployment

pytestmark = [pytest.mark.integration]

APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - mkdir -p /www && echo served-by-{name} > /www/index.html && exec httpd -f -p 8080 -h /www
  networks: {networks}
  init: true
  stopGracePeriod: 1s
"""


def app(name: str, networks: str) -> str:
    return APP.format(name=name, networks=networks)


def run_in(deployment: SwarmDeployment, app: str, command: list[str]) -> tuple[int, str]:
    """Exit code and output of ``command`` in ``app``'s running task."""
    (task,) = deployment.api.tasks(
        filters={"service": f"{deployment.instance}-{app}", "desired-state": "running"}
    )
    return deployment.run_in_task(task, command)


def fetch(deployment: SwarmDeployment, app: str, host: str) -> str:
    """What ``host:8080`` answers from inside ``app``'s running task ('' when unreachable).
    Through ``tasks.<alias>`` (the tasks' own addresses): the lab engine's network namespace
    has no IPVS, so its virtual IPs resolve but carry no traffic."""
    request = f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | timeout 5 nc -w 2 {host} 8080'
    for _ in range(30):  # the overlay's DNS learns a new service's name within seconds (on
        # three nodes, from the other nodes' gossip)
        code, output = run_in(deployment, app, ["sh", "-c", request])
        if code == 0 and output.strip():
            return output.rstrip().splitlines()[-1]
        time.sleep(0.5)
    return ""


def resolves(deployment: SwarmDeployment, app: str, name: str, expect: bool = True) -> bool:
    """Whether ``name`` resolves in ``app``'s task; asked again for a few seconds while the
    answer is not ``expect`` (a name reaches the other nodes' DNS by gossip)."""
    for _ in range(10):
        code, output = run_in(deployment, app, ["timeout", "5", "nslookup", name])
        found = code == 0 and "can't find" not in output
        if found == expect:
            return found
        time.sleep(0.5)
    return found


def test_services_reach_each_other_only_on_shared_overlay_networks(
    deployment: SwarmDeployment,
) -> None:
    """``db`` is shop-db on network a and other-db on network b; an unshared name does not
    resolve; the next diff is in sync; deleting other-db removes network b, not a."""
    deployment.commit(
        {
            "apps/web.yaml": app("web", "[{name: a}]"),
            "apps/shop-db.yaml": app("shop-db", "[{name: a, aliases: [db]}]"),
            "apps/other-db.yaml": app("other-db", "[{name: b, aliases: [db]}]"),
        }
    )
    deployment.trueup("apply", check=True)
    net_a, net_b = f"trueup-{deployment.instance}-a", f"trueup-{deployment.instance}-b"
    for name in (net_a, net_b):
        (network,) = deployment.api.networks(names=[name])
        assert network["Driver"] == "overlay" and network["Attachable"] is True
        assert network["Labels"]["trueup.instance"] == deployment.instance
    template = deployment.service("shop-db")["Spec"]["TaskTemplate"]
    (attached,) = template["Networks"]
    assert attached["Aliases"] == ["db"]
    assert attached["Target"] == deployment.api.inspect_network(net_a)["Id"]

    assert fetch(deployment, "web", "tasks.db") == "served-by-shop-db"
    assert fetch(deployment, "other-db", "tasks.db") == "served-by-other-db"
    assert resolves(deployment, "web", "db") and resolves(deployment, "other-db", "db")
    assert not resolves(deployment, "web", "other-db", expect=False)
    assert not resolves(deployment, "web", "tasks.other-db", expect=False)
    assert not resolves(deployment, "other-db", "web", expect=False)
    diff = deployment.trueup("diff")
    assert diff.returncode == 0, diff.stdout + diff.stderr

    deployment.remove_file("apps/other-db.yaml")
    deployment.trueup("apply", check=True)
    assert deployment.api.networks(names=[net_b]) == []
    assert [n["Name"] for n in deployment.api.networks(names=[net_a])] == [net_a]
    assert fetch(deployment, "web", "tasks.db") == "served-by-shop-db"
