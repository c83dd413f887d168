"""``spec.envFrom``: dotenv files of the repository read at the commit become plain variables
(below ``env``), enter the spec hash by keyed digest only, and a bad file fails its app alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from controller.desired.envfiles import parse_env_file
from controller.errors import SourceError
from controller.reconciler import PassResult, Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import commit_files, make_repo

WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {name: web}
spec:
  image: busybox:1.36
  envFrom: [{file: config/common.env}, {file: config/web.env}]
  env: {MODE: from-env}
"""
OTHER = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: other}\nspec: {image: busybox:1.36}\n"
BROKEN = """\
apiVersion: trueup/v1
kind: App
metadata: {name: broken}
spec:
  image: busybox:1.36
  envFrom: [{file: config/gone.env}]
"""


def _pass(repo: Path, tmp_path: Path, runtime: FakeRuntime, **kw: object) -> PassResult:
    async def run() -> PassResult:
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            target = ContainerTarget(runtime)
            reconciler = Reconciler(source, target, instance="t", path="apps", **kw)  # type: ignore[arg-type]
            return await reconciler.run_pass()

    return asyncio.run(run())


def _env(runtime: FakeRuntime, app: str) -> dict[str, str]:
    (spec,) = [c.spec for c in runtime._containers.values() if c.spec.labels["trueup.app"] == app]
    return dict(spec.env)


def _label_spec(runtime: FakeRuntime, app: str) -> str:
    (spec,) = [c.spec for c in runtime._containers.values() if c.spec.labels["trueup.app"] == app]
    return spec.labels["trueup.spec"]


def test_env_files_become_variables_with_only_a_digest_in_the_labels(tmp_path: Path) -> None:
    """The container gets the files' variables (a later file over an earlier one, ``env``
    over both); its labels name the files and a digest, never a value; a changed file rolls
    the app (through the desired-state cache too) and the diff names the file."""
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {
            "apps/web.yaml": WEB,
            "apps/other.yaml": OTHER,
            "config/common.env": "# shared\nLEVEL=info\nMODE=from-file\nexport REGION='eu west'\n",
            "config/web.env": 'LEVEL=debug\nGREETING="hi\\nthere"\n',
        },
    )
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    cache = tmp_path / "cache"
    first = _pass(repo, tmp_path, runtime, cache_dir=cache)
    assert not first.problems
    env = _env(runtime, "web")
    assert env == {
        "LEVEL": "debug",
        "MODE": "from-env",
        "REGION": "eu west",
        "GREETING": "hi\nthere",
    }
    label = _label_spec(runtime, "web")
    assert "debug" not in label and "eu west" not in label
    assert [e["file"] for e in json.loads(label)["envFrom"]] == [
        "config/common.env",
        "config/web.env",
    ]
    assert "envFrom" not in json.loads(_label_spec(runtime, "other"))
    again = _pass(repo, tmp_path, runtime, cache_dir=cache)
    assert again.plan.in_sync
    commit_files(repo, {"config/web.env": "LEVEL=warning\n"}, "env")
    rolled = _pass(repo, tmp_path, runtime, cache_dir=cache)
    assert {c.app: c.action for c in rolled.plan.changes} == {"web": "update"}
    (change,) = rolled.plan.changes
    assert [(f.path, f.after) for f in change.fields] == [
        ("envFrom[config/web.env]", "(values changed)")
    ]
    assert _env(runtime, "web")["LEVEL"] == "warning"


def test_a_missing_env_file_fails_its_app_alone(tmp_path: Path) -> None:
    """An app reading a file that is not at the commit is a located problem of that app; the
    other apps apply."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/broken.yaml": BROKEN, "apps/other.yaml": OTHER})
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    result = _pass(repo, tmp_path, runtime)
    assert [(p.file, p.line) for p in result.problems] == [("apps/broken.yaml", 1)]
    assert "spec.envFrom[0].file" in result.problems[0].message
    assert "config/gone.env" in result.problems[0].message
    assert {c.app: c.action for c in result.plan.changes} == {"other": "create"}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("A=1\nNOT A PAIR\n", "line 2"),
        ("JUSTANAME\n", "line 1: a variable without '='"),
        ("1BAD=x\n", "line 1"),
    ],
)
def test_a_file_that_is_not_dotenv_is_refused_naming_the_line(text: str, why: str) -> None:
    """Not ``KEY=VALUE`` (a bare name would read the controller's own environment)."""
    with pytest.raises(SourceError, match=why):
        parse_env_file("x.env", text.encode())


def test_an_oversized_or_binary_env_file_is_refused() -> None:
    with pytest.raises(SourceError, match="larger than"):
        parse_env_file("x.env", b"A=" + b"x" * 300_000)
    with pytest.raises(SourceError, match="not UTF-8"):
        parse_env_file("x.env", b"A=\xff\n")
