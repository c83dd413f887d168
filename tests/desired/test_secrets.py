"""Host secrets at the edge: a broken ``*.env`` file fails only the apps that read it, and
secret digests are keyed per instance, so a label's digest cannot be checked offline."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from controller import labels as L
from controller.desired.secrets import KEY_FILE, SecretStore, load_digest_key, load_secrets
from controller.errors import ConfigError, SecretError
from controller.reconciler import Reconciler
from controller.runtime.fake import FakeRuntime
from controller.source import GitSource
from controller.targets.containers.target import ContainerTarget
from tests.builders import container, desired_app
from tests.gitutil import make_repo

PASSWORD = "hunter2"
REF = {"DB_PASSWORD": {"secretRef": {"name": "db", "key": "password"}}}


def manifest(name: str, secret: str) -> str:
    return (
        f"apiVersion: trueup/v1\nkind: App\nmetadata: {{name: {name}}}\n"
        f"spec:\n  image: busybox:1.36\n  env: {{S: {{secretRef: {{name: {secret}, key: k}}}}}}\n"
    )


def test_non_utf8_env_file_fails_only_the_apps_that_read_it(tmp_path: Path) -> None:
    """The app reading the broken file fails, naming the file; the other app is applied."""
    repo = tmp_path / "repo"
    make_repo(
        repo, {"apps/web.yaml": manifest("web", "db"), "apps/api.yaml": manifest("api", "ok")}
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db.env").write_bytes(b"k=caf\xe9\n")
    (secrets / "ok.env").write_text("k=fine\n")

    async def run() -> tuple[list[str], list[str]]:
        with GitSource(str(repo), state_dir=tmp_path / "state") as source:
            runtime = FakeRuntime(instance="t", images=["busybox:1.36"])
            reconciler = Reconciler(
                source, ContainerTarget(runtime), instance="t", secrets_dir=secrets
            )
            result = await reconciler.run_pass()
            running = sorted(c.labels[L.APP] for c in await runtime.list())
            return [str(p) for p in result.problems], running

    problems, running = asyncio.run(run())
    assert running == ["api"]
    assert problems == [
        f"apps/web.yaml:1:1: app web: secret 'db': {secrets / 'db.env'} is not UTF-8 text (byte 5)"
    ]


def test_unreadable_env_file_is_a_secret_error(tmp_path: Path) -> None:
    """A file that cannot be decoded is recorded, and only a lookup of it raises."""
    (tmp_path / "db.env").write_bytes(b"\xff\xfe")
    (tmp_path / "ok.env").write_text("k=v\n")
    store = load_secrets(tmp_path)
    assert store.get("ok", "k") == "v"
    with pytest.raises(SecretError, match=r"db\.env is not UTF-8 text"):
        store.get("db", "k")


def _label_digest(store: SecretStore) -> str:
    want = desired_app("web", store, env=REF)
    spec = json.loads(container(want, 0).labels[L.SPEC])
    return str(spec["env"]["DB_PASSWORD"]["digest"])


def test_digest_is_keyed_per_instance_and_the_key_is_private(tmp_path: Path) -> None:
    """Two state dirs give two keys and two label digests for one secret; neither digest is
    a plain sha256 of the value, and the key file is 0600 and stable across loads."""
    one, two = load_digest_key(tmp_path / "one"), load_digest_key(tmp_path / "two")
    assert one != two and len(one) == 32
    assert load_digest_key(tmp_path / "one") == one
    for state in ("one", "two"):
        assert stat.S_IMODE((tmp_path / state / KEY_FILE).stat().st_mode) == 0o600
    values = {"db": {"password": PASSWORD}}
    first = _label_digest(SecretStore(values, digest_key=one))
    second = _label_digest(SecretStore(values, digest_key=two))
    assert first != second
    assert first == _label_digest(SecretStore(values, digest_key=one))
    unkeyed = [
        hashlib.sha256(PASSWORD.encode()).hexdigest(),
        hashlib.sha256(f"trueup-secret\0web\0DB_PASSWORD\0{PASSWORD}".encode()).hexdigest(),
    ]
    for label in (first, second):
        hexpart = label.rpartition(":")[2]
        assert not any(h.startswith(hexpart) for h in unkeyed)


def test_a_readable_key_file_is_tightened_and_a_damaged_one_refused(tmp_path: Path) -> None:
    """A key file others can read is made 0600; a damaged one is an error, not a new key."""
    key = load_digest_key(tmp_path)
    path = tmp_path / KEY_FILE
    path.chmod(0o644)
    assert load_digest_key(tmp_path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not hex\n")
    with pytest.raises(ConfigError, match="secret digest key"):
        load_digest_key(tmp_path)


@pytest.mark.usefixtures("docker_engine")
def test_cli_digests_with_the_state_dirs_key(tmp_path: Path, instance: str) -> None:
    """`trueup diff` makes the key in its state dir (0600) and never prints a digest."""
    repo = tmp_path / "repo"
    make_repo(repo, {"apps/web.yaml": manifest("web", "db")})
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db.env").write_text("k=hunter2\n")
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "controller", "diff", "--repo", str(repo), "--instance", instance,
         "--state-dir", str(state), "--secrets-dir", str(secrets), "--output", "json"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert stat.S_IMODE((state / KEY_FILE).stat().st_mode) == 0o600
    assert "hunter2" not in done.stdout and "hmac-sha256" not in done.stdout
