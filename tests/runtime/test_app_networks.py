"""App networks (``spec.networks``) on the real engines, applied as a pass applies them.

Apps on network ``a`` reach each other by alias; an app on network ``b`` answering to the same
alias (``db``) is a different container, out of reach from ``a``. An app without networks
stays on the instance network. A network no app joins any more is gone after the pass.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import docker
import pytest

from controller.desired.resolve import DesiredApp, DesiredState
from controller.runtime import Runtime
from controller.runtime.base import app_network_name, network_name
from controller.runtime.docker import DockerRuntime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.observed import observe
from tests.builders import desired_app

pytestmark = pytest.mark.integration

SERVE = "mkdir -p /www && echo served-by-$APP > /www/index.html && exec httpd -f -p 8080 -h /www"


def server(name: str, **spec: Any) -> DesiredApp:
    return desired_app(
        name,
        command=["sh", "-c", SERVE],
        env={"APP": name},
        init=True,
        stopGracePeriod="1s",
        **spec,
    )


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


async def apply(runtime: Runtime, instance: str, *apps: DesiredApp) -> None:
    desired = DesiredState(revision="r1", apps={a.name: a for a in apps})
    plan = make_plan(desired, observe(await runtime.list()), allow_empty=True)
    applier = Applier(runtime, desired, instance=instance, read_context=_no_context, settle_s=0.5)
    outcomes = await applier.run(plan)
    assert all(o.ok for o in outcomes), outcomes


async def container_of(runtime: Runtime, app: str) -> str:
    (found,) = [c.id for c in await runtime.list() if c.app == app]
    return found


async def fetch(runtime: Runtime, container: str, host: str, *, wait: float = 10.0) -> str:
    """What ``host:8080`` answers from inside ``container`` ('' when it cannot be reached
    within ``wait`` seconds: the engines' DNS learns a new replica's address within a moment);
    busybox-static's wget crashes, its nc resolves and connects."""
    request = f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | timeout 5 nc -w 2 {host} 8080'
    deadline = time.monotonic() + wait
    while True:
        result = await runtime.exec(container, ["sh", "-c", request], timeout=15)
        if result.exit_code == 0 and result.output.strip():
            return result.output.rstrip().splitlines()[-1]
        if time.monotonic() > deadline:
            return ""
        await asyncio.sleep(0.5)


async def resolves(runtime: Runtime, container: str, name: str) -> bool:
    result = await runtime.exec(container, ["timeout", "5", "nslookup", name], timeout=15)
    return result.exit_code == 0 and "can't find" not in result.output


def engine_networks(runtime: Runtime, instance: str) -> set[str]:
    assert isinstance(runtime, DockerRuntime)
    client = docker.APIClient(base_url=runtime.url, version="1.41", timeout=30)
    try:
        return {
            n["Name"] for n in client.networks(filters={"label": f"trueup.instance={instance}"})
        }
    finally:
        client.close()


async def test_apps_reach_each_other_only_on_the_networks_they_share(
    real_runtime: Runtime, instance: str
) -> None:
    """``db`` means shop-db on network a and other-db on network b; names resolve only where
    networks are shared, an app without networks stays on the instance network, the
    network no app joins any more is removed after the pass, and made again when an app
    joins it again."""
    web = server("web", networks=[{"name": "a"}])
    shop_db = server("shop-db", networks=[{"name": "a", "aliases": ["db"]}])
    other_db = server("other-db", networks=[{"name": "b", "aliases": ["db"]}])
    both = server("both", networks=[{"name": "a"}, {"name": "b", "aliases": ["hub"]}])
    plain = server("plain")
    await apply(real_runtime, instance, web, shop_db, other_db, both, plain)

    net_a, net_b = app_network_name(instance, "a"), app_network_name(instance, "b")
    assert {net_a, net_b, network_name(instance)} <= engine_networks(real_runtime, instance)
    ids = {app: await container_of(real_runtime, app) for app in ("web", "other-db", "plain")}
    assert await fetch(real_runtime, ids["web"], "db") == "served-by-shop-db"
    assert await fetch(real_runtime, ids["other-db"], "db") == "served-by-other-db"
    assert await fetch(real_runtime, ids["other-db"], "hub") == "served-by-both"
    assert await fetch(real_runtime, ids["web"], "both") == "served-by-both"
    assert await resolves(real_runtime, ids["web"], "db")
    assert not await resolves(real_runtime, ids["web"], "other-db")
    assert not await resolves(real_runtime, ids["other-db"], "web")
    assert not await resolves(real_runtime, ids["plain"], "db")
    assert not await resolves(real_runtime, ids["web"], "plain")

    rows = {c.app: c for c in await real_runtime.list()}
    both_id = rows["both"].id
    assert set(rows["web"].addresses) == {net_a}
    assert rows["web"].ip_address == rows["web"].addresses[net_a]
    assert set(rows["both"].addresses) == {net_a, net_b}
    assert set(rows["plain"].addresses) == {network_name(instance)}

    # leaving a network rolls the app (its new replica is on network a only)
    only_a = server("both", networks=[{"name": "a"}])
    await apply(real_runtime, instance, web, shop_db, other_db, only_a, plain)
    assert await container_of(real_runtime, "both") != both_id
    assert not await resolves(real_runtime, ids["other-db"], "hub")
    # Podman's DNS (aardvark-dns) was seen to stall for up to ~50 s on network a after a
    # container on networks a and b was removed (README, "App networks"); Docker's does not
    assert await fetch(real_runtime, ids["web"], "both", wait=70) == "served-by-both"

    await apply(real_runtime, instance, web, shop_db, only_a, plain)
    left = engine_networks(real_runtime, instance)
    assert net_a in left and net_b not in left
    assert await fetch(real_runtime, ids["web"], "db") == "served-by-shop-db"

    # the same controller brings other-db back: network b is made again
    await apply(real_runtime, instance, web, shop_db, other_db, only_a, plain)
    assert net_b in engine_networks(real_runtime, instance)
    again = await container_of(real_runtime, "other-db")
    assert await fetch(real_runtime, again, "db") == "served-by-other-db"


async def test_a_network_of_that_name_not_made_by_trueup_is_refused(
    real_runtime: Runtime, instance: str
) -> None:
    """An engine network named like an app network but without trueup's labels is never
    joined (nor removed): the app fails naming it, the network stays."""
    assert isinstance(real_runtime, DockerRuntime)
    name = app_network_name(instance, "a")
    client = docker.APIClient(base_url=real_runtime.url, version="1.41", timeout=30)
    client.create_network(name, driver="bridge", labels={"trueup.instance": instance})
    try:
        desired = DesiredState(revision="r1", apps={"web": server("web", networks=[{"name": "a"}])})
        plan = make_plan(desired, observe(await real_runtime.list()), allow_empty=True)
        applier = Applier(real_runtime, desired, instance=instance, read_context=_no_context)
        (outcome,) = await applier.run(plan)
        assert not outcome.ok and f"network {name}: exists but was not created by trueup" in (
            outcome.message
        )
        assert [c for c in await real_runtime.list() if c.app == "web"] == []
        assert name in {n["Name"] for n in client.networks(names=[name])}
    finally:
        for net in client.networks(names=[name]):
            client.remove_network(net["Id"])
        client.close()
