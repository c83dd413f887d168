"""Listing is one engine request however many containers there are, counted two ways:
by the adapter's own per-operation counter and, independently, by an HTTP proxy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller import labels as L
from controller.runtime import ContainerSpec
from controller.runtime.docker import DockerRuntime
from controller.runtime.podman import PodmanRuntime
from tests.conftest import BASE_IMAGE
from tests.runtime.conftest import cleanup, docker_url
from tests.runtime.httpcount import CountingProxy

MANY = 50


async def _create_many(rt: DockerRuntime, instance: str) -> None:
    await rt.ensure_network()
    limit = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with limit:
            await rt.create(
                ContainerSpec(
                    name=f"{instance}-many-{i}",
                    image=BASE_IMAGE,
                    command=("sleep", "300"),
                    labels={L.APP: "many", L.REPLICA: str(i)},
                )
            )

    await asyncio.gather(*(one(i) for i in range(MANY)))


@pytest.mark.integration
async def test_listing_50_containers_is_one_docker_request(
    docker_engine: None, instance: str, tmp_socket_dir: Path
) -> None:
    """list() on 50 managed containers sends exactly one HTTP request, and counts it."""
    proxy = CountingProxy(docker_url().removeprefix("unix://"), tmp_socket_dir / "d.sock")
    rt = DockerRuntime(proxy.url, instance=instance)
    try:
        await _create_many(rt, instance)
        proxy.reset()
        rt.calls.clear()
        infos = await rt.list()
        assert len(infos) == MANY
        assert rt.calls == {"list": 1}
        assert len(proxy.requests) == 1
        assert proxy.requests[0].startswith("GET /v1.41/containers/json")
        # a long-running controller lists every pass: the adapter keeps no answers and
        # computes no no-op fingerprint unless a one-shot apply's recording asked for them
        await rt.list()
        assert rt.listed is None
        rt.listed = []
        await rt.list()
        assert len(rt.listed) == 1 and rt.listed[0].fingerprint.startswith("sha256:")
    finally:
        await rt.close()
        proxy.close()


@pytest.mark.integration
async def test_listing_50_containers_on_podman_is_two_requests(
    podman_url: str, instance: str, tmp_socket_dir: Path
) -> None:
    """Podman needs its own list for health: two requests, still not one per container."""
    proxy = CountingProxy(podman_url.removeprefix("unix://"), tmp_socket_dir / "p.sock")
    rt = PodmanRuntime(proxy.url, instance=instance, drive_healthchecks=False)
    try:
        await _create_many(rt, instance)
        proxy.reset()
        rt.calls.clear()
        infos = await rt.list()
        assert len(infos) == MANY
        assert rt.calls == {"list": 2}
        assert len(proxy.requests) == 2
    finally:
        await rt.close()
        proxy.close()
        cleanup(podman_url, instance)
