"""The `Target` seam: `target_for` picks the target of an engine, and a pass runs through it
without asking which kind it is. Pure: the in-memory FakeRuntime, no engine."""

from __future__ import annotations

from pathlib import Path

from controller.desired.secrets import SecretStore
from controller.reconciler import Reconciler
from controller.runtime.base import Workload
from controller.runtime.docker import DockerRuntime
from controller.runtime.fake import FakeRuntime
from controller.runtime.swarm import SwarmRuntime
from controller.runtime.swarm_base import ServiceSpec
from controller.source import GitSource
from controller.targets import target_for
from controller.targets.containers.target import ContainerTarget
from controller.targets.swarm.target import SwarmTarget
from tests.builders import desired_app
from tests.gitutil import make_repo

MANIFEST = (
    "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web}\n"
    "spec:\n  image: busybox:1.36\n  replicas: 2\n  command: [sleep, '3600']\n"
)


def test_a_container_engine_gets_the_container_target_and_a_manager_the_swarm_one() -> None:
    """Docker, Podman and the fake are driven as containers; a swarm manager's engine as
    services. Nothing is asked of the engine to decide (no I/O)."""
    fake = FakeRuntime(instance="t")
    assert isinstance(target_for(fake), ContainerTarget) and target_for(fake).engine is fake
    docker = DockerRuntime("unix:///nonexistent/docker.sock", instance="t")
    assert isinstance(target_for(docker), ContainerTarget)
    swarm = SwarmRuntime(docker, registry="reg:5000")
    picked = target_for(swarm)
    assert isinstance(picked, SwarmTarget) and picked.engine is swarm


async def test_a_pass_through_the_container_target_converges_and_then_is_in_sync(
    tmp_path: Path,
) -> None:
    """observe → plan → runner: the first pass creates both replicas, the next finds nothing
    to do, and the target's logs name each replica."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": MANIFEST})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    target = ContainerTarget(runtime)
    with GitSource(str(repo), state_dir=tmp_path / "state") as source:
        reconciler = Reconciler(source, target, instance="t")
        first = await reconciler.run_pass()
        assert [(o.app, o.action, o.ok) for o in first.outcomes] == [("web", "create", True)]
        assert first.after is not None and len(first.after.state.apps["web"].replicas) == 2
        second = await reconciler.run_pass()
        assert second.plan.in_sync and second.outcomes == []
    for c in await runtime.list():
        runtime.write_log(c.id, f"hello from {c.replica}")
    lines = [line async for line in target.logs("web")]
    assert sorted(lines) == ["web-0 | hello from 0", "web-1 | hello from 1"]


def test_both_specs_are_one_workload_and_never_show_a_secret() -> None:
    """A container and a service share the workload's fields; neither repr shows a secret
    value (on a container it is in ``env``, on a service in a Swarm secret)."""
    from controller.desired.resolve import container_spec
    from controller.targets.swarm.plan import service_spec

    env = {"MODE": "fast", "TOKEN": {"secretRef": {"name": "api", "key": "token"}}}
    secrets = SecretStore({"api": {"token": "s3cret-value"}})
    web = desired_app("web", secrets=secrets, env=env, command=["sleep", "1"])
    on_docker = container_spec(web, replica=0, instance="t", revision="r1")
    on_swarm = service_spec(web, instance="t", revision="r1")
    assert isinstance(on_docker, Workload) and isinstance(on_swarm, ServiceSpec)
    assert isinstance(on_swarm, Workload)
    assert (on_docker.image, on_docker.command) == (on_swarm.image, on_swarm.command)
    assert on_docker.env["TOKEN"] == "s3cret-value" and on_swarm.secrets[0].data == "s3cret-value"
    for spec in (on_docker, on_swarm):
        shown = repr(spec)
        assert "s3cret-value" not in shown and "values hidden: MODE, TOKEN" in shown


def test_the_settings_name_the_target_without_the_caller_asking_which() -> None:
    """`open_target` reads the engine options of `trueup run`'s settings: ``runtime: swarm``
    gives the Swarm target with its registry, ``docker`` the container target; no I/O."""
    from controller.settings import Settings
    from controller.targets import open_target

    url = "unix:///nonexistent/docker.sock"
    swarm = open_target(
        Settings(runtime="swarm", runtime_url=url, instance="t", swarm_registry="reg:5000")
    )
    assert isinstance(swarm, SwarmTarget) and swarm.engine.registry == "reg:5000"
    docker = open_target(Settings(runtime="docker", runtime_url=url, instance="t"))
    assert isinstance(docker, ContainerTarget) and docker.engine.instance == "t"
