"""Container engines of the test suite's own: dockerd nodes in network namespaces.

Swarm mode changes the engine it runs on (`docker swarm init`/`leave` wipe the embedded DNS
of bridge networks that exist), so the Swarm tests never touch the host's engine: `Lab` starts
N dockerd "nodes", each in a network namespace of its own (plus a private mount namespace and
a UTS namespace for its hostname), with its own socket, data-root, exec-root, pidfile and key,
wired to one Linux bridge that lives in a further namespace. The host's network namespace,
iptables, mounts and engine are never changed; `Lab.stop` removes everything `Lab.start`
made, also after a half-finished start, and `Lab.leftovers` says what (if anything) of it
remains. Every wait is bounded. `stop_engine`/`start_engine` stop and start one node's
dockerd (a lost node, a restarted manager). The Swarm tests use three nodes and a registry:
`tests.swarm_lab.SwarmLab` builds that on this module.

The module also guards the host's engine: `install_swarm_guard` makes the docker SDK and the
``docker`` CLI refuse ``swarm init/join/leave`` aimed at it, loudly, for the whole test run.

Needs root and iproute2 (``ip``), util-linux (``unshare``) and dockerd. As a command::

    python3 -m tests.engines check [--nodes N] [--swarm]   # start, show, stop (exit 1 on leftovers)
    python3 -m tests.engines up [--nodes N] [--swarm] [--dir D]   # start, print the sockets
    python3 -m tests.engines down --dir D                  # stop what `up` started

A lab belongs to the process that made it (except `up`'s); `Lab.sweep_stale` stops labs whose
process is gone (a test run killed before its teardown), and the Swarm fixture calls it first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE = "busybox:1.36"
API_VERSION = "1.41"
NETNS_DIR = Path("/run/netns")
#: What `swarm init/join/leave` may never target: the host's engine.
HOST_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")

# In the node's private mount namespace: own hostname, keep /sys/fs/cgroup (which
# `ip netns exec` hides by remounting /sys) and a resolv.conf pointing at nothing, then enter
# the network namespace and start dockerd there. Every step execs, so the process started
# here ends up being dockerd itself.
_NODE_SH = r"""
set -e
D=$1 NS=$2
hostname "$NS"
mkdir -p "$D/cg"
mount --rbind /sys/fs/cgroup "$D/cg"
mount --bind "$D/resolv.conf" /etc/resolv.conf
exec ip netns exec "$NS" sh -c '
  set -e
  mount --rbind "$1/cg" /sys/fs/cgroup
  umount -l "$1/cg"
  exec dockerd --config-file "$1/daemon.json"' sh "$D"
"""


class LabError(Exception):
    """A lab step failed or did not finish in time (the message says which and why)."""


@dataclass
class Node:
    """One dockerd in its own network namespace ``name`` at ``address`` on the lab bridge."""

    index: int
    name: str
    address: str
    dir: Path
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def url(self) -> str:
        """What DOCKER_HOST (or ``--runtime-url``) is for this node."""
        return f"unix://{self.socket}"

    def api(self, timeout: float = 30.0) -> Any:
        """A low-level docker SDK client of this node (the caller closes it)."""
        import docker

        return docker.APIClient(base_url=self.url, version=API_VERSION, timeout=timeout)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and _pid_alive(self.pid)


class Lab:
    """N dockerd nodes in network namespaces of their own, joined by a bridge.

    ``net`` is the first three octets of the node addresses (``<net>.11``, ``.12``, ...),
    which exist only inside the lab's namespaces. ``insecure_registries`` is handed to every
    engine (a registry the lab will run). Names carry a random tag, so two labs never collide.
    """

    def __init__(
        self,
        nodes: int = 1,
        *,
        base: Path | None = None,
        net: str = "10.213.0",
        insecure_registries: Sequence[str] = (),
        detached: bool = False,
    ) -> None:
        if not 1 <= nodes <= 9:
            raise ValueError("a lab has 1 to 9 nodes")
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.base = base or Path(tempfile.mkdtemp(prefix=f"tu-{tag}-"))
        self.net = net
        self.insecure_registries = tuple(insecure_registries)
        self.switch = f"tu-{tag}-sw"
        self.nodes = [
            Node(i, f"tu-{tag}-n{i}", f"{net}.{10 + i}", self.base / f"n{i}")
            for i in range(1, nodes + 1)
        ]
        self.timings: dict[str, float] = {}
        self._netns_existed = NETNS_DIR.exists()
        self._namespaces: list[str] = []
        # who the lab belongs to: once that process is gone, `sweep_stale` may remove it
        # (None: started to stay, `down` removes it)
        me = os.getpid()
        self._owner: list[int | str | None] | None = None if detached else [me, _proc_start(me)]
        self._baseline: tuple[list[str], int] | None = _host_traces(net)

    # -- start ------------------------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> None:
        """Namespaces, wiring and one ready engine per node; `stop` on any failure."""
        _require_root_tools()
        try:
            self._save()
            with self._timed("network"):
                self._network_up()
            with self._timed("engines"):
                for node in self.nodes:
                    self._start_engine(node)
                self._save()
                for node in self.nodes:
                    self._await_engine(node, timeout)
            self._save()
        except BaseException:
            self.stop()
            raise

    def _network_up(self) -> None:
        self._add_netns(self.switch)
        sw = ["ip", "-n", self.switch]
        _run([*sw, "link", "set", "lo", "up"])
        _run([*sw, "link", "add", "br0", "type", "bridge"])
        _run([*sw, "link", "set", "br0", "up"])
        # frames bridged inside the switch namespace must not go through iptables
        for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
            _run(
                ["ip", "netns", "exec", self.switch, "sysctl", "-qw", f"net.bridge.{key}=0"],
                check=False,
            )
        for node in self.nodes:
            self._add_netns(node.name)
            peer = f"v{node.index}"
            veth = ["ip", "link", "add", "eth0", "netns", node.name, "type", "veth"]
            _run([*veth, "peer", "name", peer, "netns", self.switch])
            _run([*sw, "link", "set", peer, "master", "br0", "up"])
            n = ["ip", "-n", node.name]
            _run([*n, "link", "set", "lo", "up"])
            _run([*n, "addr", "add", f"{node.address}/24", "dev", "eth0"])
            _run([*n, "link", "set", "eth0", "up"])
            # deliberately no default route: nothing leaves the lab

    def _add_netns(self, name: str) -> None:
        self._namespaces.append(name)
        self._save()
        _run(["ip", "netns", "add", name])

    def _start_engine(self, node: Node) -> None:
        d = node.dir
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text("nameserver 127.0.0.1\n")  # lookups fail fast, locally
        config = {
            "data-root": str(d / "data"),
            "exec-root": str(d / "exec"),
            "pidfile": str(d / "docker.pid"),
            "hosts": [node.url],
            "deprecated-key-path": str(d / "key.json"),
            "bip": "10.213.1.1/24",
            "default-address-pools": [{"base": "10.213.64.0/18", "size": 24}],
            "insecure-registries": list(self.insecure_registries),
            "dns": ["127.0.0.1"],
            "iptables": True,
            "storage-driver": "overlay2",
        }
        (d / "daemon.json").write_text(json.dumps(config, indent=2))
        with (d / "dockerd.log").open("ab") as out:
            unshare = ["unshare", "--mount", "--uts", "--propagation", "private"]
            node.process = subprocess.Popen(
                [*unshare, "sh", "-c", _NODE_SH, "sh", str(d), node.name],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node.pid = node.process.pid

    def _await_engine(self, node: Node, timeout: float) -> None:
        def ready() -> bool:
            if not node.alive():
                raise LabError(f"dockerd of {node.name} exited:\n{self.log_tail(node)}")
            if not node.socket.exists():
                return False
            api = node.api(timeout=2)
            try:
                api.ping()
                return True
            except Exception:  # not answering yet; the deadline decides
                return False
            finally:
                api.close()

        wait_until(ready, timeout, f"dockerd of {node.name} answers", lambda: self.log_tail(node))

    def log_tail(self, node: Node, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((node.dir / "dockerd.log").read_text().splitlines()[-lines:])
        return "(no log)"

    # -- images and swarm ----------------------------------------------------------------

    def load_image(self, image: str = IMAGE, *, source_url: str | None = None) -> None:
        """Copy ``image`` from the host's engine (or ``source_url``) into every node."""
        import docker

        with self._timed("images"):
            src = (
                docker.APIClient(base_url=source_url, version=API_VERSION, timeout=60)
                if source_url
                else docker.from_env(version=API_VERSION, timeout=60).api
            )
            try:
                data = b"".join(src.get_image(image))
            finally:
                src.close()
            for node in self.nodes:
                api = node.api(timeout=60)
                try:
                    api.load_image(data)
                    api.inspect_image(image)
                finally:
                    api.close()

    def init_swarm(self, *, timeout: float = 60.0, heartbeat_s: int = 2) -> Node:
        """Node 1 inits a swarm (address pool inside the lab, agents' heartbeat every
        ``heartbeat_s``), the others join as workers; returns the manager once every node is
        Ready."""
        manager = self.nodes[0]
        with self._timed("swarm"):
            api = manager.api()
            try:
                api.init_swarm(
                    advertise_addr=manager.address,
                    listen_addr=f"{manager.address}:2377",
                    default_addr_pool=["10.213.128.0/17"],
                    subnet_size=24,
                    # a lost node is noticed in seconds (Swarm's default heartbeat is 5 s)
                    swarm_spec=api.create_swarm_spec(
                        dispatcher_heartbeat_period=heartbeat_s * 1_000_000_000
                    ),
                )
                token = api.inspect_swarm()["JoinTokens"]["Worker"]
                for node in self.nodes[1:]:
                    worker = node.api()
                    try:
                        worker.join_swarm(
                            [f"{manager.address}:2377"],
                            token,
                            listen_addr=f"{node.address}:2377",
                            advertise_addr=node.address,
                        )
                    finally:
                        worker.close()

                def all_ready() -> bool:
                    rows = api.nodes()
                    ready = [r for r in rows if (r.get("Status") or {}).get("State") == "ready"]
                    return len(ready) == len(self.nodes)

                wait_until(all_ready, timeout, f"{len(self.nodes)} ready swarm node(s)")
            finally:
                api.close()
        return manager

    def stop_engine(self, node: Node, grace: float = 40.0) -> None:
        """Stop one node's dockerd (TERM, bounded wait, then KILL); its namespace stays, so
        `start_engine` brings the same node back (same data, same swarm membership)."""
        if node.pid is not None:
            _stop_pid(node.pid, grace, node.process)

    def start_engine(self, node: Node, *, timeout: float = 60.0) -> None:
        """Start a stopped node's dockerd again and wait until it answers."""
        if node.alive():
            return
        self._start_engine(node)
        self._save()
        self._await_engine(node, timeout)

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every engine and remove namespaces and data; idempotent, never raises for a
        part that is already gone. `leftovers` tells what could not be removed."""
        started = time.monotonic()
        for node in self.nodes:
            _quick_service_cleanup(node)
        for node in self.nodes:
            if node.pid is not None and node.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.pid is not None:
                _stop_pid(node.pid, 40.0, node.process)
        for ns in self._namespaces:  # containerd, shims: anything left in a node namespace
            for pid in _netns_pids(ns):
                _stop_pid(pid, 10.0)
        for pid in self._container_pids():  # containers of a dockerd that died uncleanly
            _stop_pid(pid, 0.0)
        self._remove_container_cgroups()
        for ns in reversed(self._namespaces):
            if (NETNS_DIR / ns).exists():
                _run(["ip", "netns", "delete", ns], check=False)
        self._namespaces = [ns for ns in self._namespaces if (NETNS_DIR / ns).exists()]
        if not self._netns_existed and NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
            if _is_mountpoint(NETNS_DIR):
                _run(["umount", str(NETNS_DIR)], check=False)
            with contextlib.suppress(OSError):
                NETNS_DIR.rmdir()
        if self.base.exists() and not _mounts_under(self.base):
            shutil.rmtree(self.base, ignore_errors=True)
        self.timings["stop"] = time.monotonic() - started

    def leftovers(self) -> list[str]:
        """What of this lab is still on the host: namespaces, processes, mounts, files."""
        left = [f"network namespace {ns}" for ns in self._namespaces]
        left += [f"dockerd pid {n.pid}" for n in self.nodes if n.pid is not None and n.alive()]
        left += [f"mount {m}" for m in _mounts_under(self.base)]
        left += [f"mount {m}" for m in _host_mounts() if f"tu-{self.tag}-" in m]
        if not self._netns_existed and NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
            left.append(f"{NETNS_DIR} (empty; did not exist before)")  # not empty: someone's
        if self._baseline is not None:
            links, rules = _host_traces(self.net) or ((), 0)
            left += [f"host interface {x}" for x in sorted(set(links) - set(self._baseline[0]))]
            if rules > self._baseline[1]:
                left.append(f"{rules - self._baseline[1]} host iptables rule(s) naming {self.net}")
        if self.base.exists():
            left.append(f"directory {self.base}")
        return left

    def _container_ids(self) -> list[str]:
        ids: list[str] = []
        for node in self.nodes:
            with contextlib.suppress(OSError):
                ids += [p.name for p in (node.dir / "data" / "containers").iterdir()]
        return ids

    def _container_cgroups(self) -> list[Path]:
        root = Path("/sys/fs/cgroup")
        found: list[Path] = []
        for cid in self._container_ids():
            candidates = [root / "docker" / cid, root / "system.slice" / f"docker-{cid}.scope"]
            with contextlib.suppress(OSError):
                candidates += [c / "docker" / cid for c in root.iterdir() if c.is_dir()]
            found += [c for c in candidates if c.is_dir()]
        return found

    def _container_pids(self) -> list[int]:
        pids: set[int] = set()
        for cg in self._container_cgroups():
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in (cg / "cgroup.procs").read_text().split())
        return sorted(pids)

    def _remove_container_cgroups(self) -> None:
        for cg in sorted(self._container_cgroups(), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                cg.rmdir()

    # -- bookkeeping -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.monotonic() - started

    def setup_seconds(self) -> float:
        return sum(v for k, v in self.timings.items() if k != "stop")

    def describe_timings(self) -> str:
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())

    def _save(self) -> None:
        if not self.base.is_dir():
            return
        state = {
            "tag": self.tag,
            "owner": self._owner,
            "net": self.net,
            "netns_existed": self._netns_existed,
            "namespaces": self._namespaces,
            "nodes": [
                {"index": n.index, "name": n.name, "address": n.address, "pid": n.pid}
                for n in self.nodes
            ],
        }
        (self.base / "lab.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, base: Path) -> Lab:
        """The lab `up` left in ``base`` (to stop it from another process)."""
        state = json.loads((base / "lab.json").read_text())
        lab = cls.__new__(cls)
        lab.tag = state["tag"]
        lab.base = base
        lab.net = state["net"]
        lab.insecure_registries = ()
        lab.switch = f"tu-{lab.tag}-sw"
        lab.nodes = [
            Node(n["index"], n["name"], n["address"], base / f"n{n['index']}", n["pid"])
            for n in state["nodes"]
        ]
        lab.timings = {}
        lab._netns_existed = state["netns_existed"]
        lab._namespaces = list(state["namespaces"])
        lab._owner = state.get("owner")
        lab._baseline = None
        return lab

    @classmethod
    def sweep_stale(cls, root: Path | None = None) -> list[Path]:
        """Stop labs (under the temp dir) whose owning process is gone: a test run that was
        killed before its teardown. Labs of live processes and detached ones (`up`) stay."""
        swept: list[Path] = []
        for state in sorted((root or Path(tempfile.gettempdir())).glob("tu-*/lab.json")):
            try:
                owner = json.loads(state.read_text()).get("owner")
            except (OSError, ValueError):
                continue
            if not owner or _proc_start(int(owner[0])) == owner[1]:
                continue
            with contextlib.suppress(Exception):  # best effort; what is left shows in leftovers
                cls.load(state.parent).stop()
                swept.append(state.parent)
        return swept

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- helpers ----------------------------------------------------------------------------------


def wait_until(
    probe: Callable[[], bool],
    timeout: float,
    what: str,
    detail: Callable[[], str] | None = None,
    poll: float = 0.1,
) -> None:
    """Poll ``probe`` until it is true; `LabError` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail else ""
            raise LabError(f"timed out after {timeout:.0f}s waiting until {what}{extra}")
        time.sleep(poll)


def _require_root_tools() -> None:
    if os.geteuid() != 0:
        raise LabError("a lab needs root (network and mount namespaces)")
    missing = [t for t in ("ip", "unshare", "dockerd", "mount") if shutil.which(t) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)} (scripts/ensure-test-tools installs them)")


def _run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(cmd)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (tells a pid apart from a later one of that number)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _host_traces(net: str) -> tuple[list[str], int] | None:
    """What a lab leaking into the host's network namespace would leave: interfaces named as
    the lab's (inside its namespaces) and iptables rules naming its addresses."""
    names = {"br0", *(f"v{i}" for i in range(1, 10))}
    try:
        links = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name in names)
    except OSError:
        links = []
    prefix = net.rsplit(".", 1)[0] + "."
    try:
        dump = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return links, sum(1 for line in dump.stdout.splitlines() if prefix in line)


def _pid_alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z"


def _stop_pid(pid: int, grace: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """TERM, a bounded wait, then KILL (``grace`` 0: KILL at once); waits until it is gone
    (bounded) and reaps it when it is our child."""

    def alive() -> bool:
        return process.poll() is None if process is not None else _pid_alive(pid)

    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    if not alive():
        return
    if grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        wait(grace)
    if alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait(10.0)


def _netns_pids(ns: str) -> list[int]:
    if not (NETNS_DIR / ns).exists():
        return []
    out = _run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def _quick_service_cleanup(node: Node) -> None:
    """Remove a manager's services first: a dockerd with fewer tasks stops faster."""
    if not node.alive() or not node.socket.exists():
        return
    with contextlib.suppress(Exception):  # best effort: stopping the engine follows anyway
        api = node.api(timeout=10)
        try:
            if (api.info().get("Swarm") or {}).get("ControlAvailable"):
                for service in api.services():
                    api.remove_service(service["ID"])
        finally:
            api.close()


def _host_mounts() -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [line.split()[4] for line in lines if len(line.split()) > 4]


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    return [m for m in _host_mounts() if m == str(base) or m.startswith(prefix)]


def _is_mountpoint(path: Path) -> bool:
    return str(path) in _host_mounts()


# -- the guard for the host's engine ------------------------------------------------------------


class HostSwarmRefused(AssertionError):
    """A test tried to init, join or leave a swarm on the host's engine."""


def protected_sockets() -> set[str]:
    """Unix socket paths of the host's engine (the defaults, and DOCKER_HOST if set)."""
    paths = set(HOST_SOCKETS)
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        paths.add(host.removeprefix("unix://"))
    return paths | {os.path.realpath(p) for p in paths}


def install_swarm_guard(shim_dir: Path) -> Callable[[], None]:
    """Make the docker SDK and the ``docker`` CLI refuse `swarm init/join/leave` on the host's
    engine for this process and its children; returns the undo."""
    import docker.api.swarm

    mixin = docker.api.swarm.SwarmApiMixin
    protected = protected_sockets()
    saved = {name: getattr(mixin, name) for name in ("init_swarm", "join_swarm", "leave_swarm")}

    def guarded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def refuse_on_host(self: Any, *args: Any, **kwargs: Any) -> Any:
            adapter = getattr(self, "_custom_adapter", None)
            target = getattr(adapter, "socket_path", None) or str(getattr(self, "base_url", ""))
            if target in protected or os.path.realpath(target) in protected:
                raise HostSwarmRefused(
                    f"refused: {name} on the host's engine ({target}); swarm tests run on an "
                    "engine of their own (tests/engines.py)"
                )
            return original(self, *args, **kwargs)

        return refuse_on_host

    for name, original in saved.items():
        setattr(mixin, name, guarded(name, original))

    real = shutil.which("docker")
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "docker"
    if real is not None:
        shim.write_text(_CLI_SHIM.format(real=real, protected=" ".join(sorted(protected))))
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{shim_dir}{os.pathsep}{saved_path}"

    def undo() -> None:
        for name, original in saved.items():
            setattr(mixin, name, original)
        os.environ["PATH"] = saved_path

    return undo


_CLI_SHIM = """#!/bin/sh
# tests/engines.py: no `docker swarm init|join|leave` on the host's engine during the tests.
host=${{DOCKER_HOST:-}}
want= cmd= sub=
for a in "$@"; do
  if [ -n "$want" ]; then
    [ "$want" = host ] && host=$a
    want=; continue
  fi
  case $a in
    -H|--host) want=host; continue ;;
    -c|--context|--config|-l|--log-level|--tlscacert|--tlscert|--tlskey) want=skip; continue ;;
    --host=*) host=${{a#--host=}}; continue ;;
    -*) continue ;;
  esac
  if [ -z "$cmd" ]; then cmd=$a; [ "$cmd" = swarm ] || break; else sub=$a; break; fi
done
case $sub in init|join|leave)
  path=${{host#unix://}}
  for p in {protected}; do
    if [ -z "$host" ] || [ "$path" = "$p" ]; then
      echo "REFUSED by the test suite: docker swarm $sub on the host's engine" \\
        "(${{host:-default}}); swarm tests run on an engine of their own (tests/engines.py)" >&2
      exit 97
    fi
  done ;;
esac
exec {real} "$@"
"""


def host_swarm_state(timeout: float = 5.0) -> str | None:
    """The host engine's swarm state (``inactive``, ``active``, ...), None without an engine."""
    try:
        import docker

        client = docker.from_env(version=API_VERSION, timeout=timeout)
        try:
            swarm = client.info().get("Swarm") or {}
        finally:
            client.close()
    except Exception:  # no engine: nothing to guard
        return None
    return str(swarm.get("LocalNodeState") or "inactive")


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.engines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("check", "up"):
        p = sub.add_parser(name)
        p.add_argument("--nodes", type=int, default=1)
        p.add_argument("--swarm", action="store_true", help="init a swarm on node 1")
        p.add_argument("--no-image", action="store_true", help=f"do not load {IMAGE}")
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
    lab = Lab(args.nodes, base=base, detached=args.command == "up")
    try:
        lab.start()
        if not args.no_image:
            lab.load_image()
        if args.swarm:
            lab.init_swarm()
        for node in lab.nodes:
            print(f"{node.name} {node.address} DOCKER_HOST={node.url}")
        print(f"set up in {lab.setup_seconds():.1f}s ({lab.describe_timings()})")
    except BaseException:
        lab.stop()
        raise
    if args.command == "up":
        print(f"stop with: python3 -m tests.engines down --dir {lab.base}")
        return 0
    lab.stop()
    left = lab.leftovers()
    print(f"stopped in {lab.timings['stop']:.1f}s")
    print("\n".join(f"left: {x}" for x in left) or "nothing left on the host")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
