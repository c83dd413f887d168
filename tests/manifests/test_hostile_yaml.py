"""Hostile YAML in a commit: every value PyYAML cannot build, every tag beyond plain data and
every bomb becomes a located problem for its own file; the other files still load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.manifests.loader import load_files
from tests.gitutil import make_repo

GOOD = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: good}\nspec: {image: busybox:1.36}\n"
HEAD = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: bad}\nspec:\n  image: busybox:1.36\n"

# Each value sits at line 6, column 9 (`  user: <value>`).
VALUES = {
    "int": "!!int x",
    "float": "!!float ''",
    "bool": "!!bool x",
    "timestamp": "!!timestamp x",
    "digits": "1" * 4301,
    "hex-digits": "0x" + "f" * 4000,
    "bad-date": "2001-02-30",
    "bad-month": "2001-13-01",
    "bad-hour": "2001-01-01 99:99:99",
    "bad-offset": "!!timestamp '2001-12-14t21:59:43.10+25:00'",
    "empty-binary-int": "!!int 0b",
    "binary": "!!binary 'AAAAA'",
    "python-name": "!!python/name:os.system",
    "python-object": "!!python/object/apply:os.system [id]",
    "set": "!!set {a, b}",
    "omap": "!!omap [a: 1, b]",
    "pairs": "!!pairs [1]",
    "local-tag": "!custom x",
    "str-on-list": "!!str [a]",
    "merge-scalar": "{<<: 1}",
    "merge-list-of-scalars": "{<<: [1]}",
    "merge-itself": "&a {<<: *a}",
    "deep-flow": "[" * 100_000 + "]" * 100_000,
    "alias-cycle": "&a [*a]",
}
BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n"
    for i in range(8)
)
MERGE_BOMB = "a0: &a0 {k: 1}\n" + "".join(
    f"x{i}: {{<<: [&a{i + 1} {{<<: [*a{i}, *a{i}]}}]}}\n" for i in range(40)
)
LONG_STRING_BOMB = (
    "apiVersion: trueup/v1\nkind: App\nmetadata: {name: bomb}\nspec:\n  image: busybox:1.36\n"
    f"  workingDir: &a /{'x' * 900_000}\n  command: [{', '.join(['*a'] * 40)}]\n"
)  # 36 MB once expanded; with 50,000 aliases of a shorter string, gigabytes of spec JSON
NESTED_MERGE_BOMB = "x: " + "".join(f"{{<<: [&m{i} " for i in range(30)) + "{k: v}"
NESTED_MERGE_BOMB += "".join(f", *m{i}]}}" for i in reversed(range(30)))


@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_hostile_value_is_a_located_problem(value: str) -> None:
    """The bad value is reported at its own line and column; the other file's app loads."""
    files = {
        "apps/bad.yaml": (HEAD + f"  user: {value}\n").encode(),
        "apps/good.yaml": GOOD.encode(),
    }
    result = load_files(files)
    assert list(result.apps) == ["good"]
    assert result.failed_files == {"apps/bad.yaml"}
    (problem, *_) = result.problems
    assert (problem.file, problem.line) == ("apps/bad.yaml", 6), str(problem)
    assert problem.column >= 9, str(problem)
    assert len(problem.message) < 200


@pytest.mark.parametrize(
    "text",
    [BOMB, MERGE_BOMB, NESTED_MERGE_BOMB, LONG_STRING_BOMB, "- " * 200_000 + "x\n"],
    ids=["aliases", "merges", "nested-merges", "long-string", "block-nesting"],
)
def test_bombs_are_refused_quickly(text: str) -> None:
    """Alias and merge-key expansion and nesting are bounded: a problem, not a hung process."""
    result = load_files({"bomb.yaml": text.encode(), "good.yaml": GOOD.encode()})
    assert list(result.apps) == ["good"]
    assert [p.file for p in result.problems] == ["bomb.yaml"]
    assert (
        "expands to more than" in result.problems[0].message or "nest" in result.problems[0].message
    )


def test_plain_merge_keys_still_work() -> None:
    """Ordinary ``<<`` merges of mappings and of a list of mappings still load."""
    text = (
        "apiVersion: trueup/v1\nkind: App\nmetadata: {name: web, labels: &l {a: b}}\n"
        "spec: {<<: [{image: busybox:1.36}, {user: nobody}], replicas: 2, init: true}\n"
    )
    result = load_files({"a.yaml": text.encode()})
    spec = result.apps["web"].app.spec
    assert (spec.image, spec.user, spec.replicas) == ("busybox:1.36", "nobody", 2)


def test_validate_reports_each_hostile_file_without_traceback(tmp_path: Path) -> None:
    """`trueup validate` on a commit full of hostile values exits 1 with one located error per
    file, never a traceback, and the good file raises no error."""
    files = {f"apps/{name}.yaml": HEAD + f"  user: {value}\n" for name, value in VALUES.items()}
    files["apps/good.yaml"] = GOOD
    files["apps/bomb.yaml"] = BOMB
    make_repo(tmp_path / "repo", files)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "controller", "validate", "--repo", str(tmp_path / "repo")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path / "repo",
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out
    for name in [*VALUES, "bomb"]:
        assert any(
            line.startswith(f"apps/{name}.yaml:") and line.split(":")[1].isdigit()
            for line in out.splitlines()
        ), (name, out)
    assert "apps/good.yaml" not in out
