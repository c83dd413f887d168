"""``spec.files`` in the desired stage: content from git at the commit enters the spec hash by
digest (never bytes), secret files by keyed digest, and an app without files keeps its hash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from controller.reconciler import PassResult, Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.builders import desired_app
from tests.gitutil import commit_files, make_repo

WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {name: web}
spec:
  image: busybox:1.36
  files:
    - {path: /etc/web/web.conf, source: config/web.conf}
    - {path: /www, source: config/site}
"""
OTHER = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: other}\nspec: {image: busybox:1.36}\n"
SECRET = """\
apiVersion: trueup/v1
kind: App
metadata: {name: vault}
spec:
  image: busybox:1.36
  files:
    - {path: /run/secrets/pw, secretRef: {name: db, key: password}}
    - {path: /run/secrets/tls.key, secretFile: tls.key, owner: "1000"}
"""


def test_an_app_without_files_keeps_the_spec_hash_it_had() -> None:
    """Upgrading trueup rolls no app that does not use files: the hash is the one the
    release before files computed for the same manifest."""
    app = desired_app("web", command=["sleep", "1"], env={"A": "1"},
                      ports=[{"name": "http", "containerPort": 80}])  # fmt: skip
    assert app.spec_hash == "91421e78e22b33cfae164e465a5842796afceca935084f4c66ed5cee99bf83ad"
    assert "files" not in app.spec


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    files = {"apps/web.yaml": WEB, "apps/other.yaml": OTHER, "README.md": "x\n"}
    make_repo(repo, {**files, "config/web.conf": "listen 80;\n", "config/site/index.html": "v1\n"})
    return repo


def _pass(repo: Path, tmp_path: Path, runtime: FakeRuntime, **kw: object) -> PassResult:
    async def run() -> PassResult:
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            target = ContainerTarget(runtime)
            reconciler = Reconciler(source, target, instance="t", path="apps", **kw)  # type: ignore[arg-type]
            return await reconciler.run_pass()

    return asyncio.run(run())


def _actions(result: PassResult) -> dict[str, str]:
    return {c.app: c.action for c in result.plan.changes}


def test_a_file_change_rolls_its_app_and_other_commits_roll_nothing(tmp_path: Path) -> None:
    """The created container gets the files at the commit; a commit outside them changes
    nothing (also through the desired-state cache); a commit to one of them updates only
    the app that reads it, naming the field."""
    repo = _repo(tmp_path)
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    cache = tmp_path / "cache"
    first = _pass(repo, tmp_path, runtime, cache_dir=cache)
    assert _actions(first) == {"web": "create", "other": "create"}
    (web,) = [c.spec for c in runtime._containers.values() if c.spec.labels["trueup.app"] == "web"]
    assert {f.path: (f.data, f.mode) for f in web.files} == {
        "/etc/web/web.conf": (b"listen 80;\n", 0o444),
        "/www/index.html": (b"v1\n", 0o444),
    }
    assert b"listen 80" not in json.dumps(dict(web.labels)).encode()
    assert "listen 80" not in (cache / "desired-cache.json").read_text()

    commit_files(repo, {"README.md": "docs\n"}, "docs")
    assert _actions(_pass(repo, tmp_path, runtime, cache_dir=cache)) == {}

    commit_files(repo, {"config/site/index.html": "v2\n"}, "new page")
    rolled = _pass(repo, tmp_path, runtime, cache_dir=cache)  # --path's tree is unchanged
    assert _actions(rolled) == {"web": "update"}
    (change,) = rolled.plan.changes
    (field,) = change.fields
    assert field.path == "files[/www]" and field.before != field.after
    (web,) = [c.spec for c in runtime._containers.values() if c.spec.labels["trueup.app"] == "web"]
    assert {f.path: f.data for f in web.files}["/www/index.html"] == b"v2\n"


def test_a_missing_source_fails_that_app_only(tmp_path: Path) -> None:
    """A source that is not at the commit is a located error for its app; the others apply."""
    repo = _repo(tmp_path)
    commit_files(repo, {"apps/web.yaml": WEB.replace("config/web.conf", "config/gone.conf")}, "x")
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    result = _pass(repo, tmp_path, runtime)
    assert _actions(result) == {"other": "create"}
    (problem,) = result.problems
    assert problem.file == "apps/web.yaml"
    assert "spec.files[0].source" in problem.message and "config/gone.conf" in problem.message


def test_a_source_over_the_size_cap_fails_that_app(tmp_path: Path) -> None:
    """More than 16 MiB of files for one app is an error naming the cap."""
    repo = _repo(tmp_path)
    commit_files(repo, {"config/site/big.bin": "x" * (16 * 1024 * 1024)}, "big")
    result = _pass(repo, tmp_path, FakeRuntime(instance="t", images=["busybox:1.36"]))
    assert _actions(result) == {"other": "create"}
    assert "16 MiB" in result.problems[0].message


def test_secret_files_come_from_the_secrets_dir_by_digest(tmp_path: Path) -> None:
    """A secretRef key and a whole secret file reach the container as files (0400 by
    default, owner as given); a missing one fails that app only; neither value is in the
    labels or the cache; rotating one rolls the app."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/vault.yaml": SECRET, "apps/other.yaml": OTHER})
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db.env").write_text("password=pa55-Word-xyz\n")
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    cache = tmp_path / "cache"
    missing = _pass(repo, tmp_path, runtime, secrets_dir=secrets, cache_dir=cache)
    assert _actions(missing) == {"other": "create"}
    assert "secret file 'tls.key' not found" in missing.problems[0].message
    (secrets / "tls.key").write_bytes(b"-----KEY key-bytes-789\n")
    made = _pass(repo, tmp_path, runtime, secrets_dir=secrets, cache_dir=cache)
    assert _actions(made) == {"vault": "create"}
    (vault,) = [c for c in runtime._containers.values() if c.spec.labels["trueup.app"] == "vault"]
    assert {f.path: (f.data, f.mode, f.uid) for f in vault.spec.files} == {
        "/run/secrets/pw": (b"pa55-Word-xyz", 0o400, 0),
        "/run/secrets/tls.key": (b"-----KEY key-bytes-789\n", 0o400, 1000),
    }
    stored = json.dumps(dict(vault.labels)) + (cache / "desired-cache.json").read_text()
    assert "pa55-Word-xyz" not in stored and "key-bytes-789" not in stored
    assert _actions(_pass(repo, tmp_path, runtime, secrets_dir=secrets, cache_dir=cache)) == {}
    (secrets / "tls.key").write_bytes(b"-----KEY rotated\n")
    rotated = _pass(repo, tmp_path, runtime, secrets_dir=secrets, cache_dir=cache)
    assert _actions(rotated) == {"vault": "update"}
    assert "rotated" not in repr(rotated.plan)


RELOADED = WEB + "  reload: {signal: SIGHUP}\n  env: {LEVEL: info}\n"


def test_with_reload_a_file_change_updates_in_place_and_signals(tmp_path: Path) -> None:
    """With ``reload``, a commit that changes only files keeps the container, uploads the
    new files and sends SIGHUP, and the next pass is in sync; a change of anything else
    still replaces the container."""
    repo = _repo(tmp_path)
    commit_files(repo, {"apps/web.yaml": RELOADED}, "reload")
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    _pass(repo, tmp_path, runtime)
    ids = set(runtime._containers)
    commit_files(repo, {"config/web.conf": "listen 81;\n"}, "conf")
    reloaded = _pass(repo, tmp_path, runtime)
    assert _actions(reloaded) == {"web": "update"}
    assert [s.reload is not None for s in reloaded.plan.changes[0].steps] == [True]
    assert set(runtime._containers) == ids
    (web,) = [c for c in runtime._containers.values() if c.spec.labels["trueup.app"] == "web"]
    assert runtime.signals == [(web.id, "SIGHUP")]
    assert {f.path: f.data for f in web.spec.files}["/etc/web/web.conf"] == b"listen 81;\n"
    assert _actions(_pass(repo, tmp_path, runtime)) == {}  # reloaded: no second reload
    commit_files(repo, {"config/web.conf": "listen 80;\n"}, "revert")  # the labels' content
    assert _actions(_pass(repo, tmp_path, runtime)) == {"web": "update"}
    assert {f.path: f.data for f in web.spec.files}["/etc/web/web.conf"] == b"listen 80;\n"
    assert _actions(_pass(repo, tmp_path, runtime)) == {}
    assert set(runtime._containers) == ids and len(runtime.signals) == 2
    commit_files(repo, {"apps/web.yaml": RELOADED.replace("info", "debug")}, "env")
    replaced = _pass(repo, tmp_path, runtime)
    assert _actions(replaced) == {"web": "update"}
    assert web.id not in runtime._containers


def test_a_symlink_out_of_the_repository_is_refused_one_inside_is_followed(
    tmp_path: Path,
) -> None:
    """A source that is (or holds) a symlink leaving the repository fails that app, naming
    it; a link that stays inside gives the file it points to."""
    repo = _repo(tmp_path)
    (repo / "config/site/passwd").symlink_to("/etc/passwd")
    (repo / "config/inside.conf").symlink_to("web.conf")
    manifest = WEB + "    - {path: /etc/inside.conf, source: config/inside.conf}\n"
    commit_files(repo, {"apps/web.yaml": manifest}, "links")
    runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
    refused = _pass(repo, tmp_path, runtime)
    assert _actions(refused) == {"other": "create"}
    assert "a symlink leads out of the repository" in refused.problems[0].message
    (repo / "config/site/passwd").unlink()
    commit_files(repo, {}, "no escape")
    made = _pass(repo, tmp_path, runtime)
    assert _actions(made) == {"web": "create"}
    (web,) = [c.spec for c in runtime._containers.values() if c.spec.labels["trueup.app"] == "web"]
    assert {f.path: f.data for f in web.files}["/etc/inside.conf"] == b"listen 80;\n"
