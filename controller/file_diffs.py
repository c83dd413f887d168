"""The content diff of a changed ``spec.files`` file, shown by ``trueup diff`` and ``apply``.

trueup has both commits: the one the running replica was applied from (its ``trueup.revision``
label) and the one being applied, so for a changed git file it shows the unified diff of the
two blobs under the ``files[<path>]`` field, for text files (UTF-8, no NUL) of at most 64 KiB,
capped at 40 lines. A folder shows the diff of each of its changed text files, within the
same cap. A secret file never shows more than ``(secret changed)``; a revision or blob that
cannot be read shows no diff (the field still names the change). Pure apart from ``read``,
which the reconciler gives (it reads git at the edge).
"""

from __future__ import annotations

import dataclasses
import difflib
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from controller.desired.files import SourceFile
from controller.errors import TrueupError
from controller.planning import Change, Plan
from controller.targets.observed import ObservedState

MAX_TEXT_BYTES = 64 * 1024
MAX_LINES = 40
Reader = Callable[[str, str], Sequence[SourceFile]]
"""(revision, source) → the source's files at that revision."""


def with_content_diffs(
    plan: Plan, desired: Mapping[str, Mapping[str, Any]], observed: ObservedState, read: Reader
) -> Plan:
    """``plan`` with the content diff added to every changed git file field it can read."""
    if plan.revision is None:
        return plan
    changes = [_change(c, desired.get(c.app), observed, plan.revision, read) for c in plan.changes]
    return dataclasses.replace(plan, changes=tuple(changes))


def _change(
    change: Change,
    spec: Mapping[str, Any] | None,
    observed: ObservedState,
    revision: str,
    read: Reader,
) -> Change:
    have = observed.apps.get(change.app)
    if spec is None or have is None or not any(f.path.startswith("files[") for f in change.fields):
        return change
    new = {i["path"]: i for i in spec.get("files", ()) if "source" in i}
    fields = []
    for field in change.fields:
        path = field.path[len("files[") : -1] if field.path.startswith("files[") else None
        old_rev, old = _old_entry(have, path) if path in new else (None, None)
        if path is None or old_rev is None or old is None:
            fields.append(field)
            continue
        lines = _diff(read, (old_rev, old["source"]), (revision, new[path]["source"]), path)
        fields.append(dataclasses.replace(field, detail=tuple(lines)) if lines else field)
    return dataclasses.replace(change, fields=tuple(fields))


def _old_entry(have: Any, path: str | None) -> tuple[str | None, dict[str, Any] | None]:
    """The revision and stored ``files`` entry of the first replica that had ``path`` from git."""
    for replica in have.replicas:
        stored = replica.stored_spec() or {}
        for item in stored.get("files", ()):
            if isinstance(item, dict) and item.get("path") == path and "source" in item:
                return (replica.revision or None), item
    return None, None


def _diff(read: Reader, old: tuple[str, str], new: tuple[str, str], path: str) -> list[str]:
    try:
        before = {f.name: f.data for f in read(*old)}
        after = {f.name: f.data for f in read(*new)}
    except (TrueupError, OSError, KeyError):
        return []
    out: list[str] = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name, b""), after.get(name, b"")
        if a == b or not (_text(a) and _text(b)):
            continue
        shown = posixpath.join(path, name) if name else path
        out += list(
            difflib.unified_diff(
                a.decode().splitlines(),
                b.decode().splitlines(),
                f"a{shown}",
                f"b{shown}",
                lineterm="",
            )
        )
    if len(out) > MAX_LINES:
        out = [*out[:MAX_LINES], f"... ({len(out) - MAX_LINES} more lines)"]
    return out


def _text(data: bytes) -> bool:
    if len(data) > MAX_TEXT_BYTES or b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
