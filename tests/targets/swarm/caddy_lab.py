"""What the three-node lab's modules share: Caddy on the instance's overlay network (its
admin API and HTTP listener unix sockets in a directory shared with the host), a module
deployment routed through it with the lab's registry, steady load through it, and reads of
the tasks (their overlay addresses, the upstreams Caddy holds, the images a node has).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker

from tests.engines import Node
from tests.gitutil import make_repo
from tests.swarm_lab import CADDY_IMAGE, caddy_image
from tests.targets.swarm.conftest import SwarmDeployment, SwarmEngine

T = TypeVar("T")


def unix_get(path: Path, host: str, timeout: float = 5.0) -> tuple[int, str]:
    """One request with ``Host: host`` to the HTTP server on the unix socket ``path``."""

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(str(path))

    conn = Conn("localhost", timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    finally:
        conn.close()


class Load:
    """Steady requests for ``host`` through Caddy (one every 20 ms, each on a fresh
    connection) until stopped; every answer is kept, and every failure (not a 200, or no
    answer)."""

    def __init__(self, sock: Path, host: str) -> None:
        self.sock = sock
        self.host = host
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = unix_get(self.sock, self.host)
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                if status == 200:
                    self.answers.append(body)
                else:
                    self.failures.append(f"{status} {body}")
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def wait_for(probe: Callable[[], T], timeout: float = 60.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(docker.errors.APIError, OSError, ValueError, KeyError):
            value = probe()
            if value:
                return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or probe}"
        time.sleep(0.3)


@contextlib.contextmanager
def caddy_deployment(swarm_engine: SwarmEngine, tmp: Path) -> Iterator[SwarmDeployment]:
    """A module's deployment: its repo, an overlay network made as an operator would before
    starting Caddy on it, a Caddy container there (restarted with its engine), and trueup's
    settings for that Caddy and the lab's registry. Its services are removed after."""
    lab = swarm_engine.lab
    instance = f"t-{uuid.uuid4().hex[:10]}"
    repo = tmp / "repo"
    make_repo(repo, {"README.md": "deployment repo\n"})
    (tmp / "secrets").mkdir()
    sockets = tmp / "caddy"
    sockets.mkdir()
    api = swarm_engine.api()
    network = f"trueup-{instance}"
    api.create_network(
        network, driver="overlay", attachable=True, labels={"trueup.instance": instance}
    )
    caddy = start_caddy(lab.manager, network, sockets)
    deployment = SwarmDeployment(
        repo,
        instance,
        tmp / "state",
        tmp / "secrets",
        api,
        swarm_engine.url,
        lab,
        extra_env={
            "TRUEUP_ROUTER": "caddy",
            "TRUEUP_CADDY_ADMIN": f"unix/{sockets / 'admin.sock'}",
            "TRUEUP_PROXY_LISTEN": f"unix/{sockets / 'http.sock'}",
            "TRUEUP_SWARM_REGISTRY": lab.registry,
        },
    )
    try:
        yield deployment
    finally:
        # the services go; their networks go with the lab at the end of the session (waiting
        # here for the tasks to let go of them would only cost time)
        try:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(caddy, force=True)
            for service in api.services(filters={"label": f"trueup.instance={instance}"}):
                api.remove_service(service["ID"])
        finally:
            api.close()


def start_caddy(node: Node, network: str, sockets: Path) -> str:
    """Caddy (the host's binary in an image FROM busybox) as a container on ``network`` on
    ``node``; admin API and listener as unix sockets in ``sockets`` (the same path inside)."""
    caddy_image(node)
    (sockets / "caddy.json").write_text(
        json.dumps(
            {
                "admin": {"listen": f"unix/{sockets / 'admin.sock'}", "config": {"persist": False}},
                "logging": {"logs": {"default": {"level": "ERROR"}}},
            }
        )
    )
    api = node.api()
    try:
        box = api.create_container(
            CADDY_IMAGE,
            ["run", "--config", str(sockets / "caddy.json")],
            environment={"HOME": "/tmp", "XDG_DATA_HOME": "/tmp", "XDG_CONFIG_HOME": "/tmp"},
            host_config=api.create_host_config(
                binds={str(sockets): {"bind": str(sockets), "mode": "rw"}},
                restart_policy={"Name": "always"},
            ),
            networking_config=api.create_networking_config({network: api.create_endpoint_config()}),
        )
        api.start(box["Id"])
    finally:
        api.close()
    wait_for(lambda: (sockets / "admin.sock").exists(), 20, "caddy's admin socket")
    return str(box["Id"])


def proxy(deployment: SwarmDeployment) -> Path:
    return Path(deployment.extra_env["TRUEUP_PROXY_LISTEN"].removeprefix("unix/"))


def running(deployment: SwarmDeployment, app: str) -> list[dict[str, Any]]:
    rows = deployment.api.tasks(
        filters={"service": f"{deployment.instance}-{app}", "desired-state": "running"}
    )
    return [t for t in rows if t["Status"]["State"] == "running"]


def task_address(task: dict[str, Any], network: str) -> str:
    for attachment in task.get("NetworksAttachments") or []:
        if attachment["Network"]["Spec"]["Name"] == network:
            return str(attachment["Addresses"][0]).split("/")[0]
    raise KeyError(network)


def caddy_upstreams(deployment: SwarmDeployment) -> list[str]:
    """The upstreams of the instance's routes in Caddy now (read from its admin API)."""
    admin = deployment.extra_env["TRUEUP_CADDY_ADMIN"].removeprefix("unix/")

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(5)
            self.sock.connect(admin)

    conn = Conn("localhost", timeout=5)
    try:
        conn.putrequest("GET", f"/config/apps/http/servers/trueup-{deployment.instance}", True)
        conn.putheader("Host", "")
        conn.endheaders()
        server = json.loads(conn.getresponse().read() or b"null")
    finally:
        conn.close()
    dials: list[str] = []
    for route in (server or {}).get("routes") or []:
        for handler in route.get("handle") or []:
            dials += [u["dial"] for u in handler.get("upstreams") or []]
    return sorted(dials)


def images(node: Node) -> list[str]:
    api = node.api()
    try:
        return [t for row in api.images() for t in row.get("RepoTags") or []]
    finally:
        api.close()


def attach_caddy(deployment: SwarmDeployment, network: str) -> None:
    """Connect the deployment's Caddy to ``network`` too (an app network trueup made), as an
    operator does for routed apps that live on networks of their own."""
    api = deployment.lab.manager.api()
    try:
        filters = {"network": f"trueup-{deployment.instance}", "ancestor": CADDY_IMAGE}
        (caddy,) = api.containers(filters=filters)
        api.connect_container_to_network(caddy["Id"], network)
    finally:
        api.close()
