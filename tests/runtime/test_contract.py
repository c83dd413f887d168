"""The runtime contract, run unchanged against FakeRuntime, Docker and Podman.

Where a real process is needed (a command that exits, prints or serves), the fake is driven
by its test controls instead; everything asserted is the same.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from controller import labels as L
from controller.errors import (
    BuildFailed,
    ContainerNotFound,
    ImageNotFound,
    RuntimeRejected,
    RuntimeUnavailable,
)
from controller.runtime import (
    BuildRequest,
    ContainerInfo,
    ContainerSpec,
    HealthCheckSpec,
    LogLine,
    Runtime,
    RuntimeEvent,
)
from controller.runtime.docker import DockerRuntime
from controller.runtime.fake import FakeRuntime
from controller.runtime.podman import PodmanRuntime
from tests.conftest import BASE_IMAGE

T = TypeVar("T")
SLEEPER = ("sleep", "300")


def spec(instance: str, app: str, replica: int = 0, **overrides: object) -> ContainerSpec:
    """A small busybox container of ``app``; stops at once (init forwards SIGTERM)."""
    values: dict[str, object] = {
        "name": f"{instance}-{app}-{replica}",
        "image": BASE_IMAGE,
        "command": SLEEPER,
        "labels": {L.APP: app, L.REPLICA: str(replica)},
        "init": True,
        "stop_grace_period": 1.0,
    }
    values.update(overrides)
    return ContainerSpec(**values)  # type: ignore[arg-type]


async def eventually(probe: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll an async ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()  # type: ignore[misc]
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.2)


async def find(rt: Runtime, name: str) -> ContainerInfo | None:
    return next((c for c in await rt.list() if c.name == name), None)


def tar_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def first(stream: AsyncIterator[T], match: Callable[[T], bool], timeout: float = 20) -> T:
    async def scan() -> T:
        async for item in stream:
            if match(item):
                return item
        raise AssertionError("stream ended without a match")

    try:
        return await asyncio.wait_for(scan(), timeout)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_container_lifecycle_create_start_list_stop_remove(
    runtime: Runtime, instance: str
) -> None:
    """A created container lists as created, then running with an address, exited, gone."""
    s = spec(instance, "web")
    cid = await runtime.create(s)
    created = await find(runtime, s.name)
    assert created is not None and created.id == cid and created.state == "created"
    assert created.image == BASE_IMAGE

    await runtime.start(cid)
    running = await find(runtime, s.name)
    assert running is not None and running.state == "running" and running.running
    assert running.ip_address and running.app == "web" and running.replica == 0

    started = time.monotonic()
    await runtime.stop(cid, grace_period=1)
    assert time.monotonic() - started < 5
    stopped = await find(runtime, s.name)
    assert stopped is not None and stopped.state == "exited"
    assert stopped.exit_code is not None

    await runtime.remove(cid)
    assert await find(runtime, s.name) is None
    with pytest.raises(ContainerNotFound):
        await runtime.inspect(cid)


async def test_stop_by_signal_waits_for_exit_and_kills_after_the_grace_period(
    runtime: Runtime, instance: str
) -> None:
    """A container that exits on the signal stops at once; one that ignores it is killed once
    the grace period is over; stopping a stopped container is fine."""
    polite = spec(instance, "polite")
    stubborn = spec(
        instance, "stubborn", command=("sh", "-c", "trap '' USR1; while :; do sleep 1; done")
    )
    ids = [await runtime.create(s) for s in (polite, stubborn)]
    for cid in ids:
        await runtime.start(cid)

    started = time.monotonic()
    await runtime.stop(ids[0], grace_period=30, signal="SIGUSR1")
    assert time.monotonic() - started < 10
    started = time.monotonic()
    await runtime.stop(ids[1], grace_period=1, signal="SIGUSR1")
    assert time.monotonic() - started < 10
    for cid in ids:
        assert (await runtime.inspect(cid)).state == "exited"
        await runtime.stop(cid, grace_period=1, signal="SIGUSR1")


async def test_labels_round_trip_through_list(runtime: Runtime, instance: str) -> None:
    """Every label written at create comes back from list, plus the instance label."""
    spec_json = json.dumps({"image": BASE_IMAGE, "env": {"A": "b c"}}, sort_keys=True)
    labels = {
        L.APP: "api",
        L.REPLICA: "2",
        L.SPEC_HASH: "ab" * 32,
        L.REVISION: "0123456789abcdef0123456789abcdef01234567",
        L.SPEC: spec_json,
        f"{L.USER_PREFIX}team": "frontend",
    }
    await runtime.create(spec(instance, "api", 2, labels=labels))
    [info] = await runtime.list()
    assert dict(info.labels) == {**labels, L.INSTANCE: instance}
    assert info.labels[L.SPEC] == spec_json
    inspected = await runtime.inspect(info.name)
    assert dict(inspected.labels) == dict(info.labels)


async def test_list_shows_only_this_instance(runtime: Runtime, instance: str) -> None:
    """Containers of other instances never appear in list."""
    await runtime.create(spec(instance, "mine"))
    assert [c.app for c in await runtime.list()] == ["mine"]


async def test_create_with_a_missing_image_is_image_not_found(
    runtime: Runtime, instance: str
) -> None:
    """An image the engine lacks is a permanent ImageNotFound (nothing is pulled)."""
    with pytest.raises(ImageNotFound):
        await runtime.create(spec(instance, "x", image="trueup-test/missing:never"))
    assert not await runtime.image_exists("trueup-test/missing:never")
    assert await runtime.image_exists(BASE_IMAGE)


async def test_build_from_a_tar_stream_and_run_the_image(runtime: Runtime, instance: str) -> None:
    """A build streams its log line by line, yields an id, and the image runs."""
    context = tar_of(
        {
            "Dockerfile": "\n".join(
                [f"FROM {BASE_IMAGE}", "COPY hello.txt /hello.txt", 'CMD ["cat", "/hello.txt"]']
            ),
            "hello.txt": "hello from the build\n",
        }
    )
    lines: list[str] = []
    result = await runtime.build(
        BuildRequest(context=context, tag="trueup-test/hello:1"), on_log=lines.append
    )
    assert result.image_id.startswith("sha256:")
    assert result.tag == "trueup-test/hello:1"
    assert lines and lines == [x for x in result.log if x]
    assert await runtime.image_exists("trueup-test/hello:1")

    cid = await runtime.create(spec(instance, "hello", image="trueup-test/hello:1", command=None))
    await runtime.start(cid)
    if isinstance(runtime, FakeRuntime):
        runtime.write_log(cid, "hello from the build")
        runtime.crash(cid, 0)

    async def exited() -> bool:
        c = await find(runtime, f"{instance}-hello-0")
        return c is not None and c.state == "exited"

    await eventually(exited)
    output = [line.text async for line in runtime.logs(cid)]
    assert output == ["hello from the build"]


async def test_a_failed_build_is_build_failed_with_the_log_tail(runtime: Runtime) -> None:
    """A failing RUN step raises BuildFailed carrying the last log lines."""
    context = tar_of({"Dockerfile": f"FROM {BASE_IMAGE}\nRUN false\n"})
    with pytest.raises(BuildFailed) as caught:
        await runtime.build(BuildRequest(context=context, tag="trueup-test/broken:1"))
    assert caught.value.log_tail


async def test_logs_tail_and_follow(runtime: Runtime, instance: str) -> None:
    """Follow delivers lines as they are printed; tail returns only the last ones."""
    script = "echo one; sleep 1; echo two; sleep 300"
    cid = await runtime.create(spec(instance, "talker", command=("sh", "-c", script)))
    await runtime.start(cid)
    fake = runtime if isinstance(runtime, FakeRuntime) else None
    if fake:
        fake.write_log(cid, "one")
    stream = runtime.logs(cid, follow=True)
    seen: list[str] = []

    def collect(line: LogLine) -> bool:
        seen.append(line.text)
        if fake and line.text == "one":
            fake.write_log(cid, "two")
        return line.text == "two"

    await first(stream, collect)
    assert seen == ["one", "two"]
    tail = [line.text async for line in runtime.logs(cid, tail=1)]
    assert tail == ["two"]


async def test_exec_returns_exit_code_and_output(runtime: Runtime, instance: str) -> None:
    """exec runs a command in a running container (the basis of exec health checks)."""
    cid = await runtime.create(spec(instance, "box"))
    await runtime.start(cid)
    ok = await runtime.exec(cid, ["echo", "hi"], timeout=10)
    assert (ok.exit_code, ok.output) == (0, "hi\n")
    failed = await runtime.exec(cid, ["false"], timeout=10)
    assert failed.exit_code == 1


async def test_stats_of_a_running_container(runtime: Runtime, instance: str) -> None:
    """stats reports memory in use, the memory limit and the process count."""
    cid = await runtime.create(spec(instance, "busy", memory=64 * 1024 * 1024, cpus=0.5))
    await runtime.start(cid)
    stats = await runtime.stats(cid)
    assert stats.memory_bytes > 0
    assert stats.memory_limit == 64 * 1024 * 1024
    assert stats.pids is not None and stats.pids >= 1
    assert stats.cpu_percent >= 0


async def test_events_are_delivered_for_a_container_that_dies(
    runtime: Runtime, instance: str
) -> None:
    """A container that exits by itself produces a die event with its exit code."""
    events = runtime.events()
    s = spec(instance, "crasher", command=("sh", "-c", "sleep 1; exit 3"))
    cid = await runtime.create(s)
    await runtime.start(cid)
    if isinstance(runtime, FakeRuntime):
        runtime.crash(cid, 3)

    def is_die(e: RuntimeEvent) -> bool:
        return e.kind == "die" and e.container_id == cid

    event = await first(events, is_die)
    assert event.exit_code == 3
    assert event.name == s.name and event.app == "crasher"
    assert event.labels[L.INSTANCE] == instance


async def test_destroy_event_after_remove(runtime: Runtime, instance: str) -> None:
    """Removing a container emits destroy."""
    cid = await runtime.create(spec(instance, "gone"))
    events = runtime.events()
    await runtime.remove(cid)
    event = await first(events, lambda e: e.kind == "destroy" and e.container_id == cid)
    assert event.app == "gone"


async def test_health_check_results_show_in_list_and_events(
    runtime: Runtime, instance: str
) -> None:
    """A passing health check turns the container healthy in list and emits health_status."""
    events = runtime.events()
    check = HealthCheckSpec(test=("CMD", "true"), interval=1, timeout=2, retries=2)
    cid = await runtime.create(spec(instance, "checked", healthcheck=check))
    await runtime.start(cid)
    if isinstance(runtime, FakeRuntime):
        assert (await runtime.inspect(cid)).health == "starting"
        runtime.set_health(cid, "healthy")

    async def healthy() -> bool:
        c = await find(runtime, f"{instance}-checked-0")
        return c is not None and c.health == "healthy"

    await eventually(healthy)
    assert (await runtime.inspect(cid)).health == "healthy"

    def turned_healthy(e: RuntimeEvent) -> bool:
        return e.kind == "health_status" and e.container_id == cid and e.health == "healthy"

    event = await first(events, turned_healthy)
    assert event.app == "checked"


async def test_unreachable_engine_is_a_transient_error_within_the_timeout(
    runtime: Runtime, instance: str, tmp_socket_dir: object
) -> None:
    """An engine that does not answer gives RuntimeUnavailable quickly, and ping is False."""
    broken: Runtime
    if isinstance(runtime, FakeRuntime):
        runtime.unavailable = True
        broken = runtime
    else:
        cls = PodmanRuntime if isinstance(runtime, PodmanRuntime) else DockerRuntime
        broken = cls(f"unix://{tmp_socket_dir}/absent.sock", instance=instance, timeout=3)
    started = time.monotonic()
    assert not await broken.ping()
    with pytest.raises(RuntimeUnavailable) as caught:
        await broken.list()
    with pytest.raises(RuntimeUnavailable):
        await broken.create(spec(instance, "x"))
    assert time.monotonic() - started < 5
    if not isinstance(runtime, FakeRuntime):
        assert caught.value.__cause__ is not None
        await broken.close()


async def test_apps_resolve_each_other_by_name_on_the_managed_network(
    real_runtime: Runtime, instance: str
) -> None:
    """A container reaches another app by its app name (the DNS alias) on the bridge network."""
    serve = "mkdir -p /www && echo served-by-db > /www/index.html && exec httpd -f -p 8080 -h /www"
    db = await real_runtime.create(spec(instance, "db", command=("sh", "-c", serve)))
    client = await real_runtime.create(spec(instance, "client"))
    await real_runtime.start(db)
    await real_runtime.start(client)

    async def fetched() -> bool:
        # busybox-static's wget crashes (static glibc); its nc resolves through the alias.
        request = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 db 8080'
        result = await real_runtime.exec(client, ["sh", "-c", request], timeout=10)
        return result.exit_code == 0 and result.output.rstrip().endswith("served-by-db")

    await eventually(fetched, timeout=15)
    infos = {c.app: c for c in await real_runtime.list()}
    lookup = await real_runtime.exec(client, ["nslookup", "db"], timeout=10)
    assert infos["db"].ip_address and infos["db"].ip_address in lookup.output


async def test_instance_claim_is_exclusive_per_engine(runtime: Runtime, instance: str) -> None:
    """One controller per instance and engine: a second claim sees the first holder."""
    if isinstance(runtime, FakeRuntime):
        other: Runtime = FakeRuntime(instance=instance)
        other.claims = runtime.claims  # type: ignore[attr-defined]  # one engine, two clients
    elif isinstance(runtime, PodmanRuntime):
        other = PodmanRuntime(runtime.url, instance=instance, timeout=30)
    else:
        assert isinstance(runtime, DockerRuntime)
        other = DockerRuntime(runtime.url, instance=instance, timeout=30)
    try:
        assert await runtime.claim_instance({"pid": "101", "host": "a"}) is None
        assert await other.claim_instance({"pid": "202", "host": "b"}) == {
            "pid": "101",
            "host": "a",
        }
        await runtime.release_instance()
        assert await other.claim_instance({"pid": "202", "host": "b"}) is None
        await other.release_instance()
        await other.release_instance()  # releasing twice is fine
    finally:
        await other.close()


async def test_pull_of_an_image_no_registry_has_is_image_not_found(runtime: Runtime) -> None:
    """With no registry that has the image (none answers here), pull fails permanently and
    fast, naming the image; a pullable image (fake registry) then exists."""
    started = time.monotonic()
    with pytest.raises(ImageNotFound, match="trueup-test/absent"):
        await runtime.pull("trueup-test/absent:1")
    assert time.monotonic() - started < 30
    if isinstance(runtime, FakeRuntime):
        runtime.registry.add("trueup-test/present:1")
        await runtime.pull("trueup-test/present:1")
        assert await runtime.image_exists("trueup-test/present:1")


def test_split_image_reference() -> None:
    """Registry ports, nested paths, missing tags and digests split the way pulls need."""
    from controller.runtime.docker import split_image

    assert split_image("busybox") == ("busybox", "latest")
    assert split_image("busybox:1.36") == ("busybox", "1.36")
    assert split_image("reg:5000/team/app") == ("reg:5000/team/app", "latest")
    assert split_image("reg:5000/team/app:1.2") == ("reg:5000/team/app", "1.2")
    assert split_image("app@sha256:abc") == ("app", "sha256:abc")


def test_every_container_runtime_is_a_runtime_and_swarm_only_an_engine() -> None:
    """Docker, Podman and the fake offer the whole container contract; the Swarm adapter
    offers the engine part only (it has no create, start, stop, remove, exec or stats to
    refuse: Swarm owns its task containers) and shares the Docker transport it holds."""
    from controller.runtime.base import Engine
    from controller.runtime.swarm import SwarmRuntime

    url = "unix:///nonexistent/docker.sock"
    docker = DockerRuntime(url, instance="t")
    for adapter in (docker, PodmanRuntime(url, instance="t"), FakeRuntime(instance="t")):
        assert isinstance(adapter, Runtime) and isinstance(adapter, Engine)
    swarm = SwarmRuntime(docker, registry=None)
    assert isinstance(swarm, Engine) and not isinstance(swarm, Runtime)
    for op in ("create", "start", "stop", "remove", "exec", "stats"):
        assert not hasattr(swarm, op), op
    assert swarm.calls is docker.calls and (swarm.instance, swarm.url) == ("t", url)


async def test_images_built_for_the_instance_are_listed_and_removed_unless_used(
    runtime: Runtime, instance: str
) -> None:
    """`list_images` shows the images built with this instance's label only; `remove_image`
    deletes an unused one and is refused (RuntimeRejected) for one a container uses."""
    labels = {L.IMAGE_INSTANCE: instance, L.APP: "kept"}
    tags = [f"trueup-test/{instance}:{n}" for n in ("used", "unused", "foreign")]
    for n, tag in enumerate(tags):
        dockerfile = f"FROM {BASE_IMAGE}\nRUN echo {instance}-{n} > /id\n"
        request = BuildRequest(
            context=tar_of({"Dockerfile": dockerfile}), tag=tag, labels=labels if n < 2 else {}
        )
        await runtime.build(request)
    cid = await runtime.create(spec(instance, "kept", image=tags[0]))
    try:
        listed = await runtime.list_images()
        assert sorted(t for i in listed for t in i.tags) == sorted(tags[:2])
        assert all(i.app == "kept" and i.size > 0 for i in listed)
        with pytest.raises(RuntimeRejected):
            await runtime.remove_image(tags[0])
        assert await runtime.remove_image(tags[1]) is True
        assert not await runtime.image_exists(tags[1])
        assert await runtime.image_exists(tags[0]) and await runtime.image_exists(tags[2])
        assert await runtime.prune_dangling_images() >= 0
    finally:
        await runtime.remove(cid)
        for tag in tags:
            if await runtime.image_exists(tag):
                await runtime.remove_image(tag)
