"""A real three-node Docker Swarm with a real registry, built from `tests.engines.Lab`.

`SwarmLab` starts the nodes of a `Lab` (each a dockerd in a network namespace of its own),
runs Debian's ``docker-registry`` inside the manager's namespace on ``<manager>:5000`` (every
engine trusts it as an insecure registry), loads busybox:1.36 into every engine from the host's
engine (``docker save``, no pull), inits a swarm on node 1 and joins the others as workers.
Everything it starts lives in the lab's namespaces and directory, so `Lab.stop` removes it,
also after a half-finished start; every wait is bounded and the set-up time is recorded per
step (`Lab.describe_timings`).

`caddy_image` builds a small image FROM busybox:1.36 holding the host's ``caddy`` binary and
the shared libraries it needs (Caddy joins the instance's overlay network as a container; its
admin API and its HTTP listener are unix sockets in a directory bind-mounted from the host).

As a command (needs root; ``scripts/swarm-lab`` wraps it)::

    python3 -m tests.swarm_lab check [--nodes N]        # up, prove, down (1: leftovers)
    python3 -m tests.swarm_lab up [--nodes N] [--dir D]  # start and leave running
    python3 -m tests.swarm_lab down --dir D              # stop what `up` started
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.engines import IMAGE, Lab, LabError, Node, wait_until

REGISTRY_PORT = 5000
CADDY_IMAGE = "trueup-lab/caddy:1"


class SwarmLab:
    """``nodes`` dockerd nodes (1 manager, the rest workers) and a registry on the manager."""

    def __init__(self, nodes: int = 3, *, base: Path | None = None, detached: bool = False):
        net = "10.213.0"
        self.registry = f"{net}.11:{REGISTRY_PORT}"
        self.lab = Lab(
            nodes, base=base, net=net, insecure_registries=[self.registry], detached=detached
        )
        self.registry_process: subprocess.Popen[bytes] | None = None

    @property
    def nodes(self) -> list[Node]:
        return self.lab.nodes

    @property
    def manager(self) -> Node:
        return self.lab.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.lab.nodes[1:]

    @property
    def registry_log(self) -> Path:
        return self.lab.base / "registry.log"

    def start(self, *, timeout: float = 60.0) -> None:
        """Nodes, registry, image, swarm; everything stopped again on any failure."""
        try:
            self.lab.start(timeout=timeout)
            with self.lab._timed("registry"):
                self._registry_up(timeout)
            self.lab.load_image(IMAGE)
            self.lab.init_swarm(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.lab.stop()  # the registry runs in the manager's namespace: stopped with it

    def stop_engine(self, node: Node) -> None:
        """Stop one node's dockerd (the registry, outside any engine, keeps running)."""
        self.lab.stop_engine(node)

    def start_engine(self, node: Node) -> None:
        self.lab.start_engine(node)

    def _registry_up(self, timeout: float) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise LabError("no docker-registry (scripts/ensure-lab-tools installs it)")
        base = self.lab.base
        config = {  # JSON is YAML: the registry reads it as its config file
            "version": 0.1,
            "log": {"level": "info", "fields": {"service": "registry"}},
            "storage": {
                "filesystem": {"rootdirectory": str(base / "registry")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.registry},
        }
        (base / "registry.yml").write_text(json.dumps(config))
        serve = [binary, "serve", str(base / "registry.yml")]
        with self.registry_log.open("ab") as out:
            self.registry_process = subprocess.Popen(
                ["ip", "netns", "exec", self.manager.name, *serve],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        probe = (
            f"import urllib.request as u; u.urlopen('http://{self.registry}/v2/', timeout=1).read()"
        )

        def answers() -> bool:
            if self.registry_process is not None and self.registry_process.poll() is not None:
                raise LabError(f"docker-registry exited:\n{self.registry_log.read_text()[-2000:]}")
            cmd = ["ip", "netns", "exec", self.manager.name, sys.executable, "-c", probe]
            return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0

        wait_until(answers, timeout, f"the registry answers on {self.registry}", poll=0.2)

    def blob_pulls(self, since: int = 0) -> dict[str, int]:
        """Client address → blob GETs the registry logged after its first ``since`` lines."""
        pulls: dict[str, int] = {}
        lines = self.registry_log.read_text(errors="replace").splitlines()[since:]
        for line in lines:
            if '"GET /v2/' in line and "/blobs/" in line:
                client = line.split(" ", 1)[0]
                pulls[client] = pulls.get(client, 0) + 1
        return pulls

    def registry_lines(self) -> int:
        return len(self.registry_log.read_text(errors="replace").splitlines())

    def node_of(self, node_id: str) -> Node:
        """The lab node whose swarm node id is ``node_id``."""
        api = self.manager.api()
        try:
            hostname = api.inspect_node(node_id)["Description"]["Hostname"]
        finally:
            api.close()
        return next(n for n in self.nodes if n.name == hostname)


def caddy_image(node: Node, tag: str = CADDY_IMAGE) -> str:
    """Build ``tag`` on ``node``: busybox:1.36 plus the host's ``caddy`` and its libraries."""
    caddy = shutil.which("caddy")
    if caddy is None:
        raise LabError("no caddy (scripts/ensure-caddy installs it)")
    ldd = subprocess.run(["ldd", caddy], capture_output=True, text=True, timeout=30).stdout
    libs = [part for line in ldd.splitlines() for part in line.split() if part.startswith("/")]
    with tempfile.TemporaryDirectory(prefix="tu-caddy-") as tmp:
        ctx = Path(tmp)
        copies = []
        for i, path in enumerate([caddy, *libs]):  # copy2 follows links: the files themselves
            shutil.copy2(path, ctx / f"f{i}")
            copies.append(f"COPY f{i} {'/usr/bin/caddy' if path == caddy else path}")
        (ctx / "Dockerfile").write_text(
            "FROM busybox:1.36\n" + "\n".join(copies) + '\nENTRYPOINT ["/usr/bin/caddy"]\n'
        )
        api = node.api(timeout=120)
        try:
            for chunk in api.build(path=str(ctx), tag=tag, rm=True, decode=True):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise LabError(f"building {tag}: {chunk['error']}")
        finally:
            api.close()
    return tag


def spread(lab: SwarmLab, *, timeout: float = 90.0) -> dict[str, str]:
    """Prove the lab: a dnsrr service with a task on every node, each answering over the
    overlay from another node's task. Returns node name → what its task answered."""
    api = lab.manager.api()
    name = f"lab-check-{int(time.time())}"
    try:
        api.create_network(name, driver="overlay", attachable=True)
        api.create_service(
            {
                "ContainerSpec": {
                    "Image": IMAGE,
                    "Args": ["sh", "-c", "hostname > /tmp/i && exec httpd -f -p 8080 -h /tmp"],
                    "Hostname": "{{.Node.Hostname}}",
                },
                "Networks": [{"Target": name}],
                "Placement": {"MaxReplicas": 1},
            },
            name=name,
            mode={"Replicated": {"Replicas": len(lab.nodes)}},
            endpoint_spec={"Mode": "dnsrr"},
        )

        def running() -> list[dict[str, Any]]:
            rows = api.tasks(filters={"service": name, "desired-state": "running"})
            return [t for t in rows if t["Status"]["State"] == "running"]

        wait_until(lambda: len(running()) == len(lab.nodes), timeout, f"{name} runs everywhere")
        first = next(t for t in running() if t["NodeID"])
        node = lab.node_of(first["NodeID"])
        cid = first["Status"]["ContainerStatus"]["ContainerID"]
        napi = node.api()
        try:
            addrs = [
                a["Addresses"][0].split("/")[0]
                for t in running()
                for a in t.get("NetworksAttachments") or []
                if a["Network"]["Spec"]["Name"] == name
            ]
            answers = {}
            for addr in addrs:
                run = napi.exec_create(
                    cid, ["timeout", "5", "wget", "-qO-", f"http://{addr}:8080/i"]
                )
                answers[addr] = napi.exec_start(run["Id"]).decode().strip()
        finally:
            napi.close()
        return answers
    finally:
        api.remove_service(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                api.remove_network(name)
                break
            except Exception:  # its tasks still hold it for a moment
                time.sleep(0.5)
        api.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.swarm_lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("check", "up"):
        p = sub.add_parser(name)
        p.add_argument("--nodes", type=int, default=3)
        if name == "up":
            p.add_argument("--dir", type=Path, default=None)
    down = sub.add_parser("down")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "down":
        lab = Lab.load(args.dir)
        lab.stop()
        left = lab.leftovers()
        print("\n".join(f"left: {x}" for x in left) or f"removed {args.dir}")
        return 1 if left else 0
    base = getattr(args, "dir", None)
    if base is not None:
        base.mkdir(parents=True, exist_ok=False)
    swarm = SwarmLab(args.nodes, base=base, detached=args.command == "up")
    swarm.start()
    try:
        for node in swarm.nodes:
            role = "manager" if node is swarm.manager else "worker"
            print(f"{node.name} {role} {node.address} DOCKER_HOST={node.url}")
        where = f"insecure, inside {swarm.manager.name}"
        print(f"registry {swarm.registry} ({where}), log {swarm.registry_log}")
        print(f"set up in {swarm.lab.setup_seconds():.1f}s ({swarm.lab.describe_timings()})")
        if args.command == "up":
            print(f"stop with: scripts/swarm-lab down --dir {swarm.lab.base}")
            return 0
        for addr, answer in sorted(spread(swarm).items()):
            print(f"overlay: {addr}:8080 answered from {answer}")
    except BaseException:
        swarm.stop()
        raise
    swarm.stop()
    left = swarm.lab.leftovers()
    print(f"stopped in {swarm.lab.timings['stop']:.1f}s")
    print("\n".join(f"left: {x}" for x in left) or "nothing left on the host")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
