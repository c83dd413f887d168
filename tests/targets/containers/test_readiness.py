"""Readiness without a health check: a declared TCP port that accepts ends the settle window
early; a port that refuses, or an address the controller cannot reach, leaves the whole
window (the probe itself on loopback; the Applier on the in-memory engine)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence

from controller.runtime.fake import FakeRuntime
from controller.targets.containers.apply import Applier
from controller.targets.containers.plan import make_plan
from controller.targets.containers.readiness import Probe, tcp_listening
from controller.targets.observed import observe
from tests.builders import desired, desired_app

PORTS = [{"name": "http", "containerPort": 8080}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_listening_port_answers_listening() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await tcp_listening("127.0.0.1", [free_port(), port], 5.0) == "listening"


async def test_a_refusing_port_waits_out_the_window_then_says_timeout() -> None:
    started = time.monotonic()
    assert await tcp_listening("127.0.0.1", [free_port()], 0.2) == "timeout"
    assert time.monotonic() - started >= 0.2


async def test_a_port_that_starts_listening_late_is_found_when_it_does() -> None:
    port = free_port()

    async def listen_later() -> asyncio.Server:
        await asyncio.sleep(0.15)
        return await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)

    later = asyncio.create_task(listen_later())
    assert await tcp_listening("127.0.0.1", [port], 5.0) == "listening"
    (await later).close()


class Probes:
    def __init__(self, answer: Probe) -> None:
        self.answer = answer
        self.calls: list[tuple[str, list[int]]] = []

    async def __call__(self, host: str, ports: Sequence[int], within_s: float) -> Probe:
        self.calls.append((host, list(ports)))
        return self.answer


async def _no_context(context: str, dockerfile: str) -> bytes:
    raise AssertionError("image apps never build")


async def _apply(probe: Probes, settle_s: float, **spec: object) -> float:
    runtime = FakeRuntime(instance="test", images=["busybox:1.36"])
    state = desired(desired_app("web", **spec))
    plan = make_plan(state, observe(await runtime.list()))
    applier = Applier(
        runtime, state, instance="test", read_context=_no_context, settle_s=settle_s, probe=probe
    )
    started = time.monotonic()
    outcomes = await asyncio.wait_for(applier.run(plan), 10)
    assert [o.ok for o in outcomes] == [True]
    return time.monotonic() - started


async def test_a_container_that_listens_is_ready_without_waiting_out_the_settle() -> None:
    """A one-minute settle: the run ends within the test's 10 s because the port accepted."""
    probe = Probes("listening")
    await _apply(probe, 60.0, ports=PORTS)
    ((host, ports),) = probe.calls
    assert host.startswith("10.89.") and ports == [8080]


async def test_an_unreachable_container_gets_the_whole_settle_window() -> None:
    probe = Probes("unreachable")
    assert await _apply(probe, 0.3, ports=PORTS) >= 0.3
    assert len(probe.calls) == 1


async def test_an_app_without_tcp_ports_is_not_probed() -> None:
    probe = Probes("listening")
    udp = [{"name": "dns", "containerPort": 53, "protocol": "udp"}]
    assert await _apply(probe, 0.2, ports=udp) >= 0.2
    assert probe.calls == []
