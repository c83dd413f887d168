"""SOPS files under `trueup run` on a real dockerd: the app gets the values (env and a mounted
file); a re-encryption changes nothing, a changed value rolls the app; no value is in
`docker inspect` (beyond the environment the app asked for), the labels, the controller's log,
history, status, the desired-state cache, the diff or a notification."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.gitutil import commit_files
from tests.integration.test_controller import Controller, ctl, wait_for
from tests.integration.test_run_notify import SECRET, Recorder, recorder
from tests.sops.lab import SopsLab

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]
__all__ = ["ctl", "recorder"]

WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {name: web}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo ok > /tmp/healthz && exec httpd -f -p 8080 -h /tmp"]
  replicas: 1
  env:
    DB_PASSWORD: {secretRef: {file: secrets/db.sops.env, key: DB_PASSWORD}}
  files:
    - {path: /run/secrets/app.yaml, source: secrets/app.sops.yaml}
  ports: [{name: http, containerPort: 8080}]
  healthCheck: {http: {path: /healthz, port: http}, interval: 1s, timeout: 1s, retries: 3}
  init: true
  stopGracePeriod: 1s
"""
PASSWORDS = ("Pw-first-6c1d", "Pw-second-90ab", "Pw-third-33fe")
TOKEN = "Tok-file-51e7"


def _secrets(lab: SopsLab, password: str) -> dict[str, str]:
    env = lab.encrypt("db.sops.env", f"DB_PASSWORD={password}\n".encode())
    app = lab.encrypt("app.sops.yaml", f"token: {TOKEN}\n".encode())
    return {"secrets/db.sops.env": env.read_text(), "secrets/app.sops.yaml": app.read_text()}


def _config(tmp: Path, url: str, lab: SopsLab) -> Path:
    (tmp / "hook.url").write_text(url + "/hook\n")
    (tmp / "hook.secret").write_text(SECRET.decode())
    config = {
        "listen": "off",
        "sops_age_key_file": [str(lab.key_file)],
        "notifications": {
            "destinations": [
                {"name": "ops", "type": "webhook", "url_file": str(tmp / "hook.url"),
                 "secret_file": str(tmp / "hook.secret")},
            ],
        },
    }  # fmt: skip
    path = tmp / "config.yaml"
    path.write_text(json.dumps(config))
    return path


def _seen(ctl: Controller) -> str:
    """``$DB_PASSWORD`` and the mounted file of the one running replica ("" during a roll)."""
    running = [c for c in ctl.containers() if c.status == "running"]
    if len(running) != 1:
        return ""
    script = 'echo "$DB_PASSWORD"; cat /run/secrets/app.yaml; stat -c %a /run/secrets/app.yaml'
    try:
        return str(running[0].exec_run(["sh", "-c", script]).output.decode())
    except docker.errors.APIError:  # the roll stopped or removed it after the listing
        return ""


def _passed(ctl: Controller, revision: str) -> bool:
    return any(
        e.get("event") == "reconcile_pass" and e.get("revision") == revision for e in ctl.events()
    )


def _inspect_without_env(ctl: Controller) -> str:
    attrs: list[Any] = []
    for c in ctl.containers():
        item = json.loads(json.dumps(c.attrs))
        item["Config"].pop("Env", None)
        attrs.append(item)
    return json.dumps(attrs)


def test_sops_values_reach_the_app_and_nowhere_else(
    ctl: Controller,
    recorder: tuple[Recorder, str],
    sops_lab: SopsLab,
    tmp_path: Path,
) -> None:
    """Deploy, re-encrypt (no roll), change the value (a roll), then diff a third value."""
    rec, url = recorder
    commit_files(ctl.repo, {"apps/web.yaml": WEB, **_secrets(sops_lab, PASSWORDS[0])}, "sops")
    ctl.start("--config", str(_config(tmp_path, url, sops_lab)))
    want = f"{PASSWORDS[0]}\ntoken: {TOKEN}\n400\n"
    wait_for(lambda: ctl.synced() and _seen(ctl) == want, 60, "first apply")
    first_ids = {c.id for c in ctl.containers()}

    rotated = {}
    for name in ("secrets/db.sops.env", "secrets/app.sops.yaml"):
        path = tmp_path / Path(name).name
        path.write_bytes((ctl.repo / name).read_bytes())
        sops_lab.run("rotate", "-i", str(path))
        rotated[name] = path.read_text()
    sha = commit_files(ctl.repo, rotated, "re-encrypt with a new data key")
    wait_for(lambda: _passed(ctl, sha), 30, "the pass of the re-encryption")
    assert {c.id for c in ctl.containers()} == first_ids

    commit_files(ctl.repo, _secrets(sops_lab, PASSWORDS[1]), "a new password")
    want = f"{PASSWORDS[1]}\ntoken: {TOKEN}\n400\n"
    wait_for(
        lambda: ctl.synced() and _seen(ctl) == want and len(ctl.containers()) == 1, 60, "the roll"
    )
    assert not {c.id for c in ctl.containers()} & first_ids
    time.sleep(1)  # the pass's notification
    assert ctl.stop() == 0

    commit_files(ctl.repo, _secrets(sops_lab, PASSWORDS[2]), "a third password")
    diff = subprocess.run(
        [sys.executable, "-m", "controller", "diff", "--repo", str(ctl.repo),
         "--instance", ctl.instance, "--state-dir", str(ctl.state),
         "--sops-age-key-file", str(sops_lab.key_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert diff.returncode == 1, diff.stderr
    assert "spec.env.DB_PASSWORD: (secret changed)" in diff.stdout

    running = ctl.containers()[0]
    assert f"DB_PASSWORD={PASSWORDS[1]}" in running.attrs["Config"]["Env"]
    seen = {
        "docker inspect": _inspect_without_env(ctl),
        "diff": diff.stdout + diff.stderr,
        "log": ctl.log.read_text(errors="replace"),
        "notifications": json.dumps(rec.messages),
    }
    for p in ctl.state.rglob("*"):
        if p.is_file():
            seen[p.name] = p.read_bytes().decode("latin-1")
    assert {"history.db", "status.json", "desired-cache.json"} <= set(seen)
    assert rec.messages  # the deploys were told
    for value in (*PASSWORDS, TOKEN):
        assert not [where for where, text in seen.items() if value in text], value


SHOP = """\
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", "exec sleep 3600"]
    init: true
    stop_grace_period: 1s
    env_file: [./web.sops.env]
    environment:
      DB_PASSWORD: ${DB_PASSWORD}
    secrets: [token]
secrets:
  token: {file: ./token.sops.txt}
"""
SHOP_VALUES = (("Dot-first-8a1", "Env-first-2b7", "Sec-first-c44"),
               ("Dot-second-5d0", "Env-second-9e3", "Sec-second-f16"))  # fmt: skip


def _shop_files(lab: SopsLab, dot: str, env: str, secret: str) -> dict[str, str]:
    return {
        "shop/compose.yaml": SHOP,
        "shop/.env": lab.encrypt("shop/.env", f"DB_PASSWORD={dot}\n".encode()).read_text(),
        "shop/web.sops.env": lab.encrypt("web.sops.env", f"API_TOKEN={env}\n".encode()).read_text(),
        "shop/token.sops.txt": lab.encrypt("token.sops.txt", secret.encode()).read_text(),
    }


def _shop(ctl: Controller) -> list[Any]:
    label = [f"trueup.instance={ctl.instance}", "trueup.app=shop-web"]
    return list(ctl.client.containers.list(ignore_removed=True, all=True, filters={"label": label}))


def _shop_seen(ctl: Controller) -> str:
    running = [c for c in _shop(ctl) if c.status == "running"]
    if len(running) != 1:
        return ""
    script = 'echo "$DB_PASSWORD $API_TOKEN"; cat /run/secrets/token; stat -c %a /run/secrets/token'
    try:
        return str(running[0].exec_run(["sh", "-c", script]).output.decode())
    except docker.errors.APIError:  # the roll stopped or removed it after the listing
        return ""


def test_a_compose_project_with_sops_files_deploys_and_keeps_its_values(
    ctl: Controller, sops_lab: SopsLab, tmp_path: Path
) -> None:
    """A compose project whose committed .env, env_file and secret file are SOPS files runs
    under `trueup run` (no compose_repo_secrets): the values reach the container and none is
    in `docker inspect` beyond its environment, the labels, the log, history, status, the
    desired-state cache or the diff; a re-encryption does not roll, a changed value does."""
    first, second = SHOP_VALUES
    commit_files(ctl.repo, _shop_files(sops_lab, *first), "a compose project with SOPS files")
    ctl.start("--sops-age-key-file", str(sops_lab.key_file), "--listen", "off")
    want = f"{first[0]} {first[1]}\n{first[2]}444\n"
    wait_for(lambda: ctl.synced() and _shop_seen(ctl) == want, 60, "the compose project")
    first_ids = {c.id for c in _shop(ctl)}

    rotated = {}
    for name, kind in (("shop/.env", "dotenv"), ("shop/web.sops.env", "dotenv"),
                       ("shop/token.sops.txt", "binary")):  # fmt: skip
        path = tmp_path / "rotate" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((ctl.repo / name).read_bytes())
        sops_lab.run("rotate", "-i", "--input-type", kind, "--output-type", kind, str(path))
        rotated[name] = path.read_text()
    sha = commit_files(ctl.repo, rotated, "re-encrypt with new data keys")
    wait_for(lambda: _passed(ctl, sha), 30, "the pass of the re-encryption")
    assert {c.id for c in _shop(ctl)} == first_ids

    commit_files(ctl.repo, _shop_files(sops_lab, *second), "new values")
    want = f"{second[0]} {second[1]}\n{second[2]}444\n"
    wait_for(
        lambda: ctl.synced() and _shop_seen(ctl) == want and len(_shop(ctl)) == 1, 60, "the roll"
    )
    assert not {c.id for c in _shop(ctl)} & first_ids
    assert ctl.stop() == 0

    commit_files(ctl.repo, _shop_files(sops_lab, *first), "the first values again")
    diff = subprocess.run(
        [sys.executable, "-m", "controller", "diff", "--repo", str(ctl.repo),
         "--instance", ctl.instance, "--state-dir", str(ctl.state),
         "--sops-age-key-file", str(sops_lab.key_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert diff.returncode == 1, diff.stderr
    assert "spec.env.DB_PASSWORD: (secret changed)" in diff.stdout
    assert "envFrom[shop/web.sops.env]: (secret changed)" in diff.stdout
    assert "files[/run/secrets/token]: (secret changed)" in diff.stdout
    attrs = [json.loads(json.dumps(c.attrs)) for c in _shop(ctl)]
    for item in attrs:
        item["Config"].pop("Env", None)
    seen = {
        "docker inspect": json.dumps(attrs),
        "diff": diff.stdout + diff.stderr,
        "log": ctl.log.read_text(errors="replace"),
    }
    for p in ctl.state.rglob("*"):
        if p.is_file():
            seen[p.name] = p.read_bytes().decode("latin-1")
    assert {"history.db", "status.json", "desired-cache.json"} <= set(seen)
    for value in (*first, *second):
        assert not [where for where, text in seen.items() if value in text], value
