"""`tests.engines.Lab` cleans up after itself, also when an engine fails or dies.

These start real dockerd nodes in network namespaces (root only; skipped otherwise) and check
the host afterwards: no namespace, process, mount or directory of the lab is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engines import NETNS_DIR, Lab, LabError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root"),
]


def _lab_links() -> set[str]:
    """Interfaces in the host's namespace with a name the lab uses inside its namespaces
    (other engines on the host come and go with veths of their own, so only these count)."""
    ours = {"br0", *(f"v{i}" for i in range(1, 10))}
    return {p.name for p in Path("/sys/class/net").iterdir()} & ours


def test_a_failed_start_leaves_nothing_behind() -> None:
    """A dockerd that refuses its configuration fails `start` with its log, and the
    namespaces, the bridge and the data directory made so far are gone again."""
    links = _lab_links()
    lab = Lab(nodes=2, insecure_registries=["not a registry::"])
    with pytest.raises(LabError, match="exited"):
        lab.start(timeout=30)
    assert lab.leftovers() == []
    assert not lab.base.exists()
    assert not any((NETNS_DIR / n.name).exists() for n in lab.nodes)
    assert _lab_links() == links


def test_stop_after_the_engine_was_killed_leaves_nothing_behind(docker_engine: None) -> None:
    """SIGKILL of a node's dockerd while a container runs: `stop` still ends the container's
    processes and removes namespaces, cgroups and data."""
    links = _lab_links()
    lab = Lab(nodes=1)
    try:
        lab.start()
        lab.load_image()
        (node,) = lab.nodes
        api = node.api()
        try:
            box = api.create_container("busybox:1.36", ["sleep", "600"])
            api.start(box["Id"])
            pid = int(api.inspect_container(box["Id"])["State"]["Pid"])
        finally:
            api.close()
        assert node.pid is not None
        os.kill(node.pid, signal.SIGKILL)
    finally:
        lab.stop()
    assert lab.leftovers() == []
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the lab's container outlived the lab"
    assert _lab_links() == links


def test_a_lab_whose_run_was_killed_is_swept_by_the_next_run() -> None:
    """A lab whose owning process died without a teardown is stopped and removed by the next
    `sweep_stale`; a lab whose owner lives is left alone."""
    stale, live = Lab(nodes=1), Lab(nodes=1)
    try:
        stale.start()
        live.start()
        gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
        state = stale.base / "lab.json"
        doc = json.loads(state.read_text())
        doc["owner"] = [int(gone.stdout), "0"]  # a process that has exited
        state.write_text(json.dumps(doc))
        swept = Lab.sweep_stale()
        assert stale.base in swept and live.base not in swept
        assert not stale.base.exists()
        assert not any((NETNS_DIR / n).exists() for n in (stale.switch, stale.nodes[0].name))
        assert not stale.nodes[0].alive()  # its dockerd ended (reaped here: our child)
        assert live.nodes[0].alive() and live.base.exists()
    finally:
        stale.stop()
        live.stop()
    assert stale.leftovers() == [] and live.leftovers() == []


def test_a_swarm_lab_whose_registry_fails_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three-node lab fails at its registry, after its namespaces and three engines are
    up: `start` raises with the registry's output, and nothing of it is left on the host."""
    from tests.swarm_lab import SwarmLab

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker-registry").write_text("#!/bin/sh\necho 'no storage for you' >&2\nexit 3\n")
    (fake / "docker-registry").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    links = _lab_links()
    lab = SwarmLab(nodes=3)
    with pytest.raises(LabError, match="no storage for you"):
        lab.start(timeout=30)
    assert lab.lab.leftovers() == []
    assert not lab.lab.base.exists()
    assert not any((NETNS_DIR / n.name).exists() for n in lab.nodes)
    assert not any(n.alive() for n in lab.nodes)
    assert _lab_links() == links
