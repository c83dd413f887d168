"""Pure parts of `trueup status` and `trueup history`: where the API is, what it said, lines."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from controller.cli.inspect import _apps_from_json, _listen_url, history_line
from controller.cli.main import main


def test_listen_url_asks_loopback_for_a_wildcard_address() -> None:
    """A controller listening on every address is asked on 127.0.0.1; `off` is no URL."""
    assert _listen_url("0.0.0.0:9090") == "http://127.0.0.1:9090"
    assert _listen_url("127.0.0.1:9191") == "http://127.0.0.1:9191"
    assert _listen_url("[::1]:9090") == "http://[::1]:9090"
    assert _listen_url("off") is None and _listen_url("not an address") is None


def test_apps_from_json_reads_the_status_document() -> None:
    doc = {"apps": [{"name": "web", "sync": "Synced", "health": "Healthy", "revision": "abc",
                     "replicas": {"desired": 2, "ready": 1}, "message": ""}]}  # fmt: skip
    (app,) = _apps_from_json(doc) or []
    assert (app.name, app.desired, app.ready) == ("web", 2, 1)


def test_apps_from_json_is_none_for_another_shape() -> None:
    """Whatever else a listener answers is not a status."""
    assert _apps_from_json({"apps": [{"name": "web"}]}) is None
    assert _apps_from_json([1, 2]) is None and _apps_from_json({"apps": 3}) is None


def test_history_lines_show_a_pass_and_an_action() -> None:
    """A pass line names revision, result, counts and trigger; an action line its kind and
    the first line of its message."""
    base = {"started_at": 0.0, "revision": "a" * 40, "duration_s": 1.25, "result": "ok"}
    passed = history_line({**base, "changes": 2, "failed": 0, "trigger": "webhook"}, app=False)
    assert passed == (
        "1970-01-01 00:00:00  aaaaaaaaaaaa  ok       changes=2 failed=0 1.25s trigger=webhook"
    )
    action = history_line({**base, "kind": "create", "message": "made\nmore"}, app=True)
    assert action == "1970-01-01 00:00:00  aaaaaaaaaaaa  create  ok         1.2s  made"
    assert "  -  " in history_line({**base, "revision": None, "kind": "heal", "message": ""},
                                   app=True)  # fmt: skip


def test_status_without_a_controller_asks_the_named_engine_and_exits_2_if_it_is_down(
    tmp_path: Path,
) -> None:
    """With no API answering and no controller holding the state dir, `status` asks the
    engine; a named engine that does not answer exits 2 naming it."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "status.json").write_text(json.dumps({"api": None, "apps": []}))
    result = CliRunner().invoke(
        main,
        ["status", "--state-dir", str(state), "--listen", "off",
         "--runtime-url", "unix:///nonexistent.sock"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "nonexistent.sock" in result.output


def test_history_on_an_unusable_history_db_exits_2_naming_it(tmp_path: Path) -> None:
    """`trueup history` over a history.db that is not SQLite says so (exit 2), no traceback."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "history.db").write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(main, ["history", "--state-dir", str(state)])
    assert result.exit_code == 2, result.output
    assert "history.db" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
