"""``spec.files`` through the CLI on a real dockerd: reload in place, and secret files whose
values reach the file and nothing else a user or an attacker with `docker inspect` can read."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gitutil import git
from tests.integration.test_apply_docker import Deployment, deployment  # noqa: F401 (fixture)
from tests.integration.test_controller import Controller, ctl, wait_for  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

RELOADING = """\
apiVersion: trueup/v1
kind: App
metadata: {name: conf}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - trap 'cat /etc/app/app.conf > /tmp/seen' HUP; cat /etc/app/app.conf > /tmp/seen;
      while true; do sleep 0.1; done
  files: [{path: /etc/app/app.conf, source: config/app.conf}]
  reload: {signal: SIGHUP}
  init: true
  stopGracePeriod: 1s
"""


def _seen(dep: Deployment) -> str:
    (c,) = dep.containers("conf")
    return str(c.exec_run(["cat", "/tmp/seen"]).output.decode())


def test_reload_keeps_the_container_and_the_process_sees_the_new_file(
    deployment: Deployment,  # noqa: F811  (the fixture imported above)
) -> None:
    """With ``reload: {signal: SIGHUP}``, a commit changing the file keeps the container id,
    the process re-reads the new content on the signal, and the next diff is in sync."""
    deployment.commit({"apps/conf.yaml": RELOADING, "config/app.conf": "level=info\n"})
    deployment.trueup("apply", check=True)
    before = deployment.ids()
    assert _seen(deployment) == "level=info\n"
    deployment.commit({"config/app.conf": "level=debug\n"})
    diff = deployment.trueup("diff")
    assert "files[/etc/app/app.conf]" in diff.stdout and "+level=debug" in diff.stdout
    applied = deployment.trueup("apply", check=True)
    assert "ok     conf update" in applied.stdout
    assert deployment.ids() == before
    deadline = time.monotonic() + 5
    while _seen(deployment) != "level=debug\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _seen(deployment) == "level=debug\n"
    assert deployment.trueup("diff").returncode == 0


VAULT = """\
apiVersion: trueup/v1
kind: App
metadata: {name: web}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo ok > /tmp/healthz && exec httpd -f -p 8080 -h /tmp"]
  replicas: 1
  ports: [{name: http, containerPort: 8080}]
  healthCheck: {http: {path: /healthz, port: http}, interval: 1s, timeout: 1s, retries: 3}
  files:
    - {path: /run/secrets/db_password, secretRef: {name: db, key: password}}
    - {path: /run/secrets/tls.key, secretFile: tls.key, owner: "1000:1000"}
  init: true
  stopGracePeriod: 1s
"""


def _files(controller: Controller) -> str:
    """The secret files of the app's one container ("" while a roll has two)."""
    running = [c for c in controller.containers() if c.status == "running"]
    if len(running) != 1:
        return ""
    return str(running[0].exec_run(["sh", "-c", "cat /run/secrets/*"]).output.decode())


def test_secret_files_reach_the_file_and_nothing_else(
    ctl: Controller,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    """Under `trueup run`, a secret key and a whole secret file are files in the container;
    a rotation rolls the app; neither the old nor the new values are in `docker inspect`, the
    diff, the controller's log, history.db, status.json or desired-cache.json."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db.env").write_text("password=Old-Pa55word-1\n")
    (secrets / "tls.key").write_text("OLD-KEY-MATERIAL-2\n")
    (ctl.repo / "apps/web.yaml").write_text(VAULT)
    git(ctl.repo, "commit", "-qam", "vault")
    ctl.start("--secrets-dir", str(secrets))
    wait_for(lambda: ctl.synced() and _files(ctl).count("OLD") == 1, 60, "first apply")
    assert _files(ctl) == "Old-Pa55word-1OLD-KEY-MATERIAL-2\n"
    assert ctl.stop() == 0
    (secrets / "tls.key").write_text("NEW-KEY-MATERIAL-3\n")
    diff = ctl_cli(ctl, "diff", "--secrets-dir", str(secrets))
    assert "files[/run/secrets/tls.key]: (secret changed)" in diff
    ctl.start("--secrets-dir", str(secrets))
    wait_for(lambda: ctl.synced() and "NEW-KEY" in _files(ctl), 60, "the rotation")
    assert _files(ctl) == "Old-Pa55word-1NEW-KEY-MATERIAL-3\n"
    assert ctl.stop() == 0
    seen = [json.dumps([c.attrs for c in ctl.containers()]), diff, ctl.log.read_text()]
    names = {p.name for p in ctl.state.rglob("*") if p.is_file()}
    assert {"history.db", "status.json", "desired-cache.json"} <= names
    seen += [p.read_bytes().decode("latin-1") for p in ctl.state.rglob("*") if p.is_file()]
    for value in ("Old-Pa55word-1", "OLD-KEY-MATERIAL-2", "NEW-KEY-MATERIAL-3"):
        assert not [s for s in seen if value in s], value


def ctl_cli(controller: Controller, *args: str) -> str:
    cmd = [sys.executable, "-m", "controller", *args, "--repo", str(controller.repo)]
    cmd += ["--instance", controller.instance, "--state-dir", str(controller.state)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr
