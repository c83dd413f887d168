"""What the engine answers, read pure: list rows, inspect documents, events (Docker's and
Podman's dialects), stats, build output and log lines, no engine."""

from __future__ import annotations

from datetime import UTC, datetime

from controller import labels as L
from controller.runtime.docker_answers import (
    BuildOutput,
    LineBuffer,
    container_from_inspect,
    container_from_row,
    event_from,
    parse_time,
    split_timestamp,
    stats_from,
)

LABELS = {L.INSTANCE: "t", L.APP: "web", L.REPLICA: "0"}


def test_engine_times_keep_microseconds_and_zones() -> None:
    """Nanoseconds are cut to microseconds; Z and offsets are honoured; junk is None."""
    assert parse_time("2024-05-01T10:20:30.123456789Z") == datetime(
        2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC
    )
    assert parse_time("2024-05-01T12:20:30+02:00") == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert parse_time("yesterday") is None
    assert parse_time("2024-02-30T00:00:00Z") is None


def test_a_log_line_splits_into_time_and_text() -> None:
    """The engine's timestamp prefix becomes the line's time; a line without one is text."""
    when, text = split_timestamp("2024-05-01T10:20:30.5Z hello world")
    assert when == datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=UTC)
    assert text == "hello world"
    assert split_timestamp("no time here") == (None, "no time here")
    assert split_timestamp("2024-05-01T10:20:30Z")[1] == ""


def test_a_list_row_reads_state_health_exit_code_and_address() -> None:
    """Health and exit code come from the status text; the address from the instance's
    network, else the first network that has one."""
    row = {
        "Id": "abc",
        "Names": ["/t-web-0"],
        "Image": "busybox:1.36",
        "Labels": LABELS,
        "State": "running",
        "Status": "Up 5 seconds (healthy)",
        "Created": 1714558830,
        "NetworkSettings": {
            "Networks": {
                "bridge": {"IPAddress": "172.17.0.2"},
                "trueup-t": {"IPAddress": "10.0.0.5"},
            }
        },
    }
    info = container_from_row(row, "t")
    assert (info.id, info.name, info.image, info.app, info.replica) == (
        "abc",
        "t-web-0",
        "busybox:1.36",
        "web",
        0,
    )
    assert (info.state, info.health, info.exit_code) == ("running", "healthy", None)
    assert info.created == datetime.fromtimestamp(1714558830, UTC)
    assert info.ip_address == "10.0.0.5"
    exited = container_from_row(
        {
            **row,
            "State": "exited",
            "Status": "Exited (137) 2 seconds ago",
            "NetworkSettings": {"Networks": {"shared": {"IPAddress": "10.9.0.3"}}},
        },
        "t",
    )
    assert (exited.state, exited.health, exited.exit_code) == ("exited", None, 137)
    assert exited.ip_address == "10.9.0.3"
    bare = container_from_row({"Id": "x"}, "t")
    assert (bare.name, bare.state, bare.ip_address, bare.labels) == ("", "unknown", None, {})


def test_an_inspect_document_reads_health_exit_code_and_creation_time() -> None:
    """The inspect document's own health and exit code; an unreadable time is the epoch."""
    data = {
        "Id": "abc",
        "Name": "/t-web-0",
        "Created": "2024-05-01T10:20:30.123Z",
        "State": {"Status": "exited", "ExitCode": 3, "Health": {"Status": "unhealthy"}},
        "Config": {"Image": "busybox:1.36", "Labels": LABELS},
        "NetworkSettings": {"Networks": {"trueup-t": {"IPAddress": "10.0.0.5"}}},
    }
    info = container_from_inspect(data, "t")
    assert (info.name, info.state, info.exit_code, info.status) == (
        "t-web-0",
        "exited",
        3,
        "exited",
    )
    assert info.health == "unhealthy"
    assert info.created == datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=UTC)
    running = container_from_inspect(
        {**data, "Created": "", "State": {"Status": "running", "Health": {"Status": "odd"}}}, "t"
    )
    assert (running.exit_code, running.health) == (None, None)
    assert running.created == datetime.fromtimestamp(0, UTC)


def test_docker_events_of_this_instance() -> None:
    """A die event carries the exit code and the container's labels (not the engine's own
    attributes); health events their health; another instance's events are dropped."""
    raw = {
        "Action": "die",
        "Actor": {
            "ID": "abc",
            "Attributes": {**LABELS, "name": "t-web-0", "image": "busybox", "exitCode": "137"},
        },
        "timeNano": 1714558830_500000000,
    }
    event = event_from(raw, "t")
    assert event is not None
    assert (event.kind, event.container_id, event.name, event.exit_code) == (
        "die",
        "abc",
        "t-web-0",
        137,
    )
    assert event.labels == LABELS
    assert event.time == datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=UTC)
    health = event_from({**raw, "Action": "health_status: unhealthy"}, "t")
    assert health is not None and (health.kind, health.health) == ("health_status", "unhealthy")
    assert event_from(raw, "other") is None
    assert event_from({**raw, "Action": "exec_start: sh"}, "t") is None


def test_podman_events_are_read_in_docker_terms() -> None:
    """Podman's "remove" is Docker's "destroy"; its health is a top-level field; its own
    attributes are not labels; ``time`` in seconds when there is no ``timeNano``."""
    attributes = {**LABELS, "name": "t-web-0", "podId": "", "containerExitCode": "0"}
    removed = event_from(
        {"status": "remove", "id": "abc", "Actor": {"Attributes": attributes}, "time": 10}, "t"
    )
    assert removed is not None
    assert (removed.kind, removed.container_id, removed.labels) == ("destroy", "abc", LABELS)
    assert removed.time == datetime.fromtimestamp(10, UTC)
    health = event_from(
        {"Action": "health_status", "HealthStatus": "Healthy", "Actor": {"Attributes": attributes}},
        "t",
    )
    assert health is not None and health.health == "healthy"


def test_stats_give_cpu_percent_over_all_cores_and_memory_without_cache() -> None:
    """CPU is the usage delta over the system delta times the cores; the page cache is not
    counted as used memory."""
    data = {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 300},
            "system_cpu_usage": 2000,
            "online_cpus": 2,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
        "memory_stats": {"usage": 5000, "limit": 8000, "stats": {"inactive_file": 1000}},
        "pids_stats": {"current": 4},
    }
    stats = stats_from(data)
    assert stats.cpu_percent == 40.0
    assert (stats.memory_bytes, stats.memory_limit, stats.pids) == (4000, 8000, 4)
    empty = stats_from({})
    assert (empty.cpu_percent, empty.memory_bytes, empty.memory_limit, empty.pids) == (
        0.0,
        0,
        None,
        None,
    )


def test_build_output_collects_lines_the_error_and_the_image_id() -> None:
    """Each chunk's non-blank lines come back in order; the error is a line too; the image id
    comes from the aux message."""
    out = BuildOutput()
    assert out.feed({"stream": "Step 1/2 : FROM busybox\n\n ---> abc\n"}) == [
        "Step 1/2 : FROM busybox",
        " ---> abc",
    ]
    assert out.feed({"aux": {"ID": "sha256:feed"}}) == []
    assert out.feed({"error": "  The command returned a non-zero code: 1 \n"}) == [
        "The command returned a non-zero code: 1"
    ]
    assert out.image_id == "sha256:feed"
    assert out.error == "The command returned a non-zero code: 1"
    assert out.lines[-1] == out.error and len(out.lines) == 3


def test_a_stream_is_cut_into_lines_across_chunks() -> None:
    """A line split over chunks comes back whole, without its CR LF; the rest waits."""
    lines = LineBuffer()
    assert lines.feed(b"one\r\ntw") == ["one"]
    assert lines.feed("o\nthree") == ["two"]
    assert lines.pending == "three"
