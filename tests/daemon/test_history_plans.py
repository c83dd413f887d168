"""The history keeps each pass's plan for the dashboard's ``/passes/ID``."""

from __future__ import annotations

import json
from pathlib import Path

from controller.daemon import history as history_module
from controller.daemon.history import ActionRecord, History, PassRecord


def test_a_pass_keeps_its_plan_beside_its_actions(tmp_path: Path) -> None:
    """pass_detail returns the planned changes and the outcomes; a no-op pass has no plan;
    an unknown id is None; last_actions names each app's newest action."""
    h = History(tmp_path / "h.db")
    plan = [{"app": "web", "action": "update", "reasons": ["spec changed"],
             "fields": [{"path": "spec.env.V", "before": "1", "after": "2"}]}]  # fmt: skip
    first = h.record(
        PassRecord(1.0, 0.5, "abc", "revision", "changed", 1, 0),
        [ActionRecord("web", "update", "ok", "converged", 0.4)],
        plan,
    )
    second = h.record(PassRecord(2.0, 0.1, "abc", "resync", "noop", 0, 0), [], [])
    detail = h.pass_detail(first)
    assert detail is not None
    assert detail["plan"] == plan and detail["trigger"] == "revision"
    assert detail["actions"] == [{"app": "web", "kind": "update", "result": "ok",
                                  "message": "converged", "duration_s": 0.4}]  # fmt: skip
    quiet = h.pass_detail(second)
    assert quiet is not None and quiet["plan"] == [] and quiet["actions"] == []
    assert h.pass_detail(999) is None
    assert h.last_actions()["web"]["pass_id"] == first
    h.close()


def test_a_huge_plan_is_kept_as_headlines() -> None:
    """A plan past PLAN_MAX characters keeps each change's app, action and reasons (valid
    JSON, within the bound), not the field values."""
    big = [{"app": f"a{i}", "action": "update", "reasons": ["r"],
            "fields": [{"path": "spec.env.X", "before": "x" * 5000, "after": "y"}]}
           for i in range(100)]  # fmt: skip
    text = history_module.plan_text(big)
    assert len(text) <= history_module.PLAN_MAX
    kept = json.loads(text)
    assert kept[0] == {"app": "a0", "action": "update", "reasons": ["r"]}
