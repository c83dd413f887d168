"""The list fingerprint and the stamp file, pure (the engine-facing behaviour is in
tests/integration/test_noop_stamp_docker.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.desired import secrets
from controller.noop import stamp
from controller.noop.fingerprint import all_running, exit_code_in, health_in, list_fingerprint
from controller.runtime import docker_requests as req
from controller.runtime.base import parse_exit_code, parse_health
from controller.runtime.docker_answers import container_from_row

ROW = {
    "Id": "abc",
    "Names": ["/t-web-0"],
    "Image": "busybox:1.36",
    "Labels": {"trueup.instance": "t", "trueup.app": "web"},
    "State": "running",
    "Status": "Up 3 minutes (healthy)",
    "Created": 1700000000,
    "NetworkSettings": {"Networks": {"trueup-t": {"IPAddress": "172.18.0.2"}}},
}


def test_status_text_alone_does_not_change_the_fingerprint() -> None:
    """Only what the planner reads counts: "Up 3 minutes" becoming "Up 4 minutes" does not."""
    later = {**ROW, "Status": "Up 4 minutes (healthy)"}
    assert list_fingerprint([ROW]) == list_fingerprint([later])


@pytest.mark.parametrize(
    "change",
    [
        {"Status": "Up 4 minutes (unhealthy)"},
        {"State": "exited", "Status": "Exited (137) 1 second ago"},
        {"Labels": {"trueup.instance": "t", "trueup.app": "other"}},
        {"Id": "def"},
        {"Image": "busybox:1.37"},
        {"Created": 1700000001},
        {"NetworkSettings": {"Networks": {"trueup-t": {"IPAddress": "172.18.0.3"}}}},
    ],
)
def test_every_field_the_planner_reads_changes_it(change: dict[str, object]) -> None:
    assert list_fingerprint([ROW]) != list_fingerprint([{**ROW, **change}])


def test_a_container_more_or_less_changes_it() -> None:
    assert list_fingerprint([ROW]) != list_fingerprint([])
    assert list_fingerprint([ROW]) != list_fingerprint([ROW, {**ROW, "Id": "def"}])


@pytest.mark.parametrize(
    "status",
    ["Up 1 second (healthy)", "Up 1 second (unhealthy)", "Up 2 seconds (health: starting)",
     "Up 5 minutes", "Exited (137) 2 seconds ago", "Exited (-1) now", "Exited (x) now", ""],
)  # fmt: skip
def test_the_adapter_reads_the_status_as_the_fingerprint_does(status: str) -> None:
    info = container_from_row({**ROW, "Status": status}, "t")
    assert info.health == health_in(status) == parse_health(status)
    assert parse_exit_code(status) == exit_code_in(status)


def test_only_running_settled_containers_may_be_stamped() -> None:
    assert all_running([ROW, {**ROW, "Status": "Up 1 second"}])
    assert not all_running([{**ROW, "Status": "Up 1 second (health: starting)"}])
    assert not all_running([{**ROW, "State": "exited", "Status": "Exited (0) 1 second ago"}])


def test_the_list_query_is_the_adapters() -> None:
    assert req.label_filter("t")["filters"] == json.dumps({"label": ["trueup.instance=t"]})


def test_the_stamp_reads_the_instances_digest_key() -> None:
    assert stamp.KEY_FILE == secrets.KEY_FILE


@pytest.mark.parametrize("text", ["", "{", "[]", '{"format": 0}', '"x"', "\x00\x01"])
def test_a_damaged_stamp_is_no_stamp(tmp_path: Path, text: str) -> None:
    (tmp_path / stamp.STAMP_FILE).write_text(text)
    with pytest.raises(stamp.Stale):
        stamp.read(tmp_path)


def test_the_stamp_is_written_0600(tmp_path: Path) -> None:
    stamp.write(tmp_path, {"stdout": "x"})
    assert (tmp_path / stamp.STAMP_FILE).stat().st_mode & 0o777 == 0o600
    assert stamp.read(tmp_path)["stdout"] == "x"


def test_any_change_to_trueups_files_changes_the_code_digest(tmp_path: Path) -> None:
    """A touched, added or removed file of the package (not its byte-code caches) gives
    another digest: a stamp made by other code never answers."""
    import os
    import shutil

    import controller

    package = tmp_path / "controller"
    shutil.copytree(Path(controller.__file__).parent, package)
    before = stamp.code_digest(package)
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "x.pyc").write_bytes(b"")
    assert stamp.code_digest(package) == before
    target = package / "planning.py"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = stamp.code_digest(package)
    assert touched != before
    (package / "extra.py").write_text("")
    assert stamp.code_digest(package) not in (before, touched)
