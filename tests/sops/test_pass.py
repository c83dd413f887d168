"""SOPS files through a whole pass on the in-memory engine: values reach the app and nothing
else; a re-encryption changes nothing, a changed value rolls the app that uses it; a broken
file fails only its apps and suspends pruning."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller import labels as L
from controller.reconciler import PassResult, Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.gitutil import commit_files, make_repo
from tests.sops.lab import SopsLab, flip_first_value

PASSWORD = "pw-9f3a1c"
API_KEY = "key-77b2e0"
BLOB = "blob-d41d8c\n"
WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {name: web}
spec:
  image: busybox:1.36
  env:
    DB_PASSWORD: {secretRef: {file: secrets/db.sops.env, key: DB_PASSWORD}}
    API_KEY: {secretRef: {file: secrets/app.sops.yaml, key: api.key}}
  files:
    - {path: /etc/app/config.yaml, source: secrets/app.sops.yaml}
    - {path: /run/secrets/blob, source: secrets/blob.sops.bin, mode: "0440"}
    - {path: /etc/plain.conf, source: config/plain.conf}
"""
API = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: api}\nspec:\n  image: busybox:1.36\n"


def _secrets(lab: SopsLab, password: str = PASSWORD, api_key: str = API_KEY) -> dict[str, str]:
    env = lab.encrypt("db.sops.env", f"DB_USER=app\nDB_PASSWORD={password}\n".encode())
    app = lab.encrypt("app.sops.yaml", f"api:\n  key: {api_key}\nlevel: 3\n".encode())
    blob = lab.encrypt("blob.sops.bin", BLOB.encode())
    return {
        "secrets/db.sops.env": env.read_text(),
        "secrets/app.sops.yaml": app.read_text(),
        "secrets/blob.sops.bin": blob.read_text(),
    }


class Host:
    """A repo, the in-memory engine and the controller's state dir of one test."""

    def __init__(self, root: Path, lab: SopsLab, files: dict[str, str], path: str = ".") -> None:
        self.path = path
        self.repo = root / "repo"
        self.state = root / "state"
        self.lab = lab
        self.runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
        make_repo(self.repo, files)

    def run(self, *, key_files: tuple[Path, ...] | None = None) -> PassResult:
        async def once() -> PassResult:
            with GitSource(str(self.repo), state_dir=self.state) as source:
                reconciler = Reconciler(
                    source,
                    ContainerTarget(self.runtime),
                    instance="t",
                    path=self.path,
                    cache_dir=self.state,
                    sops_age_key_files=(self.lab.key_file,) if key_files is None else key_files,
                )
                return await reconciler.run_pass()

        return asyncio.run(once())

    def specs(self) -> dict[str, Any]:
        return {c.spec.labels[L.APP]: c.spec for c in self.runtime._containers.values()}


def _everything_written(host: Host, result: PassResult) -> str:
    """Labels of every container, the state dir's files, and the plan as printed."""
    from controller.cli import render

    labels = [str(spec.labels) for spec in host.specs().values()]
    state = [
        p.read_bytes().decode("utf-8", "replace") for p in host.state.rglob("*") if p.is_file()
    ]
    plan = render.plan_json_text(result.plan, result.problems)
    return "\n".join([*labels, *state, plan])


def test_values_reach_the_app_and_nothing_else(tmp_path: Path, sops_lab: SopsLab) -> None:
    """Env and mounted files get the plaintext; labels, cache and plan carry none of it; the
    encrypted YAML and ``.sops.yaml`` under ``--path`` are not taken for manifests."""
    host = Host(
        tmp_path,
        sops_lab,
        {
            "apps/web.yaml": WEB,
            "apps/api.yaml": API,
            "config/plain.conf": "plain\n",
            ".sops.yaml": f"creation_rules:\n  - age: {sops_lab.first.recipient}\n",
            **_secrets(sops_lab),
        },
    )
    result = host.run()
    assert result.problems == [] and not result.failed
    web = host.specs()["web"]
    assert web.env["DB_PASSWORD"] == PASSWORD and web.env["API_KEY"] == API_KEY
    files = {f.path: f for f in web.files}
    assert b"key: " + API_KEY.encode() in files["/etc/app/config.yaml"].data
    assert b"sops" not in files["/etc/app/config.yaml"].data
    assert files["/etc/app/config.yaml"].mode == 0o400
    assert files["/run/secrets/blob"].data == BLOB.encode()
    assert files["/run/secrets/blob"].mode == 0o440
    assert files["/etc/plain.conf"].mode == 0o444
    written = _everything_written(host, result)
    for value in (PASSWORD, API_KEY, BLOB.strip()):
        assert value not in written


@pytest.mark.parametrize("path", [".", "apps"])
def test_reencryption_changes_nothing_and_a_changed_value_rolls(
    tmp_path: Path, sops_lab: SopsLab, path: str
) -> None:
    """``sops rotate`` (a new data key, same values) plans nothing; a new value rolls the
    app that uses it, shown as ``(secret changed)``, and no other app. With ``--path apps``
    the secrets lie outside it, so the desired-state cache is reused and must decrypt again."""
    secrets = _secrets(sops_lab)
    files = {"apps/web.yaml": WEB, "apps/api.yaml": API, "config/plain.conf": "x\n", **secrets}
    host = Host(tmp_path, sops_lab, files, path)
    assert not host.run().failed
    before = {name: spec.labels[L.SPEC_HASH] for name, spec in host.specs().items()}
    rotated = {}
    for name, text in secrets.items():
        path = sops_lab.root / "rotate" / Path(name).name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        sops_lab.run("rotate", "-i", str(path))
        assert path.read_text() != text
        rotated[name] = path.read_text()
    commit_files(host.repo, rotated, "re-encrypt with a new data key")
    result = host.run()
    assert result.plan.changes == () and result.problems == []
    assert {n: s.labels[L.SPEC_HASH] for n, s in host.specs().items()} == before

    commit_files(host.repo, _secrets(sops_lab, "pw-new-5e1", "key-new-c04"), "new values")
    result = host.run()
    assert [(c.app, c.action) for c in result.plan.changes] == [("web", "update")]
    fields = {f.path: (f.before, f.after) for f in result.plan.changes[0].fields}
    assert fields["spec.env.DB_PASSWORD"] == ("(secret)", "(secret changed)")
    assert fields["spec.env.API_KEY"] == ("(secret)", "(secret changed)")
    assert fields["files[/etc/app/config.yaml]"][1] == "(secret changed)"
    assert "files[/run/secrets/blob]" not in fields
    assert host.specs()["web"].env["DB_PASSWORD"] == "pw-new-5e1"
    assert host.specs()["api"].labels[L.SPEC_HASH] == before["api"]


def test_broken_file_fails_its_apps_only_and_suspends_pruning(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """A tampered SOPS file fails the app using it (located, naming the file); the other app
    applies and an app removed from git is not pruned in that pass."""
    old = API.replace("name: api", "name: old")
    files = {"apps/web.yaml": WEB, "apps/api.yaml": API, "apps/old.yaml": old,
             "config/plain.conf": "x\n", **_secrets(sops_lab)}  # fmt: skip
    host = Host(tmp_path, sops_lab, files)
    assert not host.run().failed
    env = flip_first_value(files["secrets/db.sops.env"])
    (host.repo / "apps/old.yaml").unlink()
    commit_files(
        host.repo, {"secrets/db.sops.env": env, "apps/api.yaml": API + "  replicas: 2\n"}, "x"
    )
    result = host.run()
    assert [str(p) for p in result.problems] == [
        "apps/web.yaml:1:1: app web: secrets/db.sops.env: refused: a value does not "
        "authenticate (changed, or moved)"
    ]
    assert [(c.app, c.action) for c in result.plan.changes] == [("api", "scale")]
    skipped = {s.app: s.reason for s in result.plan.skipped}
    assert "pruning is suspended" in skipped["old"]
    assert "old" in host.specs() and host.specs()["web"].env["DB_PASSWORD"] == PASSWORD


def test_missing_identity_and_plain_file_are_said(tmp_path: Path, sops_lab: SopsLab) -> None:
    """Without the host's identity the problem names the file's recipients; a secretRef to a
    file that is not encrypted is refused (a secret in git must be)."""
    plain_ref = API.replace(
        "  image: busybox:1.36\n",
        "  image: busybox:1.36\n  env: {X: {secretRef: {file: config/plain.conf, key: a}}}\n",
    )
    files = {"apps/web.yaml": WEB, "apps/api.yaml": plain_ref, "config/plain.conf": "a=b\n",
             **_secrets(sops_lab)}  # fmt: skip
    host = Host(tmp_path, sops_lab, files)
    problems = [str(p) for p in host.run(key_files=(sops_lab.second_key_file,)).problems]
    assert problems[0] == (
        "apps/api.yaml:1:1: app api: config/plain.conf: is not SOPS-encrypted (a secret in git "
        "must be)"
    )
    assert "apps/web.yaml:1:1: app web: secrets/db.sops.env: none of the host's age" in problems[1]
    assert sops_lab.first.recipient in problems[1]
    assert host.specs() == {}
