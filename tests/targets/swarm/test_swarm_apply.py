"""`trueup apply`, `diff`, `status` and `logs` with `--runtime swarm` on a single-node swarm
(an engine of the tests' own, see conftest.py).

Each test drives the CLI as an operator would (a subprocess, commits made with the git CLI)
and checks the swarm itself with the docker SDK: services, their tasks and secrets.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import docker
import pytest

from tests.targets.swarm.conftest import SwarmDeployment

pytestmark = [pytest.mark.integration]

T = TypeVar("T")

WEB = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command:
    - sh
    - -c
    - echo started {greeting}; echo ok > /tmp/healthz && exec httpd -f -p 8080 -h /tmp
  replicas: {replicas}
  env: {{GREETING: "{greeting}"{secret}}}
  ports: [{{name: http, containerPort: 8080}}]
  healthCheck: {{http: {{path: /healthz, port: http}}, interval: 1s, timeout: 1s, retries: 2}}
  resources: {{memory: 64Mi, cpus: 0.25}}
  init: true
  stopGracePeriod: 1s
"""

SLEEPER = """\
apiVersion: trueup/v1
kind: App
metadata: {name: job}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  volumes: [{name: trueup-swarm-test-data, mountPath: /data}]
  init: true
  stopGracePeriod: 1s
"""


def web(
    name: str = "web", *, replicas: int = 2, greeting: str = "hello", secret: bool = False
) -> str:
    ref = ", DB_PASSWORD: {secretRef: {name: db, key: password}}" if secret else ""
    return WEB.format(name=name, replicas=replicas, greeting=greeting, secret=ref)


def container_env(service: dict[str, object]) -> list[str]:
    spec = service["Spec"]
    assert isinstance(spec, dict)
    return list(spec["TaskTemplate"]["ContainerSpec"].get("Env") or [])


def test_create_converges_then_in_sync(deployment: SwarmDeployment) -> None:
    """apply creates one service per app with its labels, limits, health check and update
    order, every replica running; then diff is in sync, status healthy, logs per slot."""
    deployment.commit({"apps/web.yaml": web(), "apps/job.yaml": SLEEPER})
    first = deployment.trueup("apply", check=True)
    assert "ok     web create" in first.stdout and "ok     job create" in first.stdout
    assert deployment.services() == [f"{deployment.instance}-job", f"{deployment.instance}-web"]
    service = deployment.service("web")
    spec = service["Spec"]
    labels = spec["Labels"]
    assert labels["trueup.instance"] == deployment.instance and labels["trueup.app"] == "web"
    assert len(labels["trueup.spec-hash"]) == 64 and json.loads(labels["trueup.spec"])
    assert spec["Mode"]["Replicated"]["Replicas"] == 2
    assert spec["UpdateConfig"]["Order"] == "start-first"
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"
    template = spec["TaskTemplate"]
    assert template["Resources"]["Limits"] == {"NanoCPUs": 250_000_000, "MemoryBytes": 64 << 20}
    assert template["ContainerSpec"]["Healthcheck"]["Retries"] == 2
    assert template["Networks"][0]["Aliases"] == ["web"]
    job = deployment.service("job")["Spec"]
    assert job["UpdateConfig"]["Order"] == "stop-first"  # volumes: stop-first by default
    (mount,) = job["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert mount["Source"] == f"trueup-{deployment.instance}_trueup-swarm-test-data"  # scoped
    assert mount["VolumeOptions"]["Labels"] == {"trueup.instance": deployment.instance}
    assert len(deployment.running_tasks("web")) == 2
    # observation filters tasks by the instance label (set on the service) in one call
    mine = deployment.api.tasks(filters={"label": f"trueup.instance={deployment.instance}"})
    assert {t["ServiceID"] for t in mine} == {service["ID"], deployment.service("job")["ID"]}
    assert deployment.api.tasks(filters={"label": "trueup.instance=someone-else"}) == []

    again = deployment.trueup("diff")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "in sync: nothing to do" in again.stdout
    status = json.loads(deployment.trueup("status", "--output", "json", check=True).stdout)
    by_name = {a["name"]: a for a in status["apps"]}
    assert by_name["web"]["health"] == "Healthy"
    assert by_name["web"]["replicas"] == {"desired": 2, "ready": 2}
    logs = deployment.trueup("logs", "web", check=True).stdout.splitlines()
    assert sorted(line.split(" | ")[0] for line in logs if "started" in line) == [
        "web-1",
        "web-2",
    ]


def test_env_change_rolls_then_scale_keeps_tasks(deployment: SwarmDeployment) -> None:
    """An env change shows per field in diff and rolls every task; a replica change only adds
    a task (the running ones stay); a rotated secret rolls too and its old secret is removed."""
    (deployment.secrets / "db.env").write_text("password=one\n")
    deployment.commit({"apps/web.yaml": web(secret=True)})
    deployment.trueup("apply", check=True)
    before = deployment.running_tasks("web")
    (old_secret,) = deployment.secret_names()
    assert "DB_PASSWORD_FILE=/run/secrets/DB_PASSWORD" in container_env(deployment.service("web"))

    deployment.commit({"apps/web.yaml": web(greeting="bonjour", secret=True)})
    diff = deployment.trueup("diff", "--output", "json")
    assert diff.returncode == 1
    (change,) = json.loads(diff.stdout)["changes"]
    assert change["action"] == "update"
    assert {"path": "spec.env.GREETING", "before": "hello", "after": "bonjour"} in change["fields"]
    deployment.trueup("apply", check=True)
    rolled = deployment.running_tasks("web")
    assert len(rolled) == 2 and set(rolled.values()).isdisjoint(before.values())
    assert "GREETING=bonjour" in container_env(deployment.service("web"))

    deployment.commit({"apps/web.yaml": web(replicas=3, greeting="bonjour", secret=True)})
    scale = deployment.trueup("diff")
    assert "~ web  scale" in scale.stdout and "spec.replicas: 2 → 3" in scale.stdout
    deployment.trueup("apply", check=True)
    scaled = deployment.running_tasks("web")
    assert len(scaled) == 3 and {scaled[1], scaled[2]} == {rolled[1], rolled[2]}

    (deployment.secrets / "db.env").write_text("password=two\n")
    rotate = deployment.trueup("apply", check=True)
    assert "web update" in rotate.stdout
    assert set(deployment.running_tasks("web").values()).isdisjoint(scaled.values())
    (new_secret,) = deployment.secret_names()
    assert new_secret != old_secret
    assert deployment.trueup("diff").returncode == 0


def test_apply_returns_once_no_old_task_runs(deployment: SwarmDeployment) -> None:
    """Like `kubectl rollout status`: right after apply returns, the tasks that run are exactly
    the replicas and all carry the new spec, after a rolling update and after a scale down."""

    def live_greetings() -> list[str]:
        return sorted(
            next(e for e in t["Spec"]["ContainerSpec"]["Env"] if e.startswith("GREETING="))
            for t in deployment.live_tasks("web")
        )

    deployment.commit({"apps/web.yaml": web(replicas=2)})
    deployment.trueup("apply", check=True)
    assert live_greetings() == ["GREETING=hello"] * 2

    deployment.commit({"apps/web.yaml": web(replicas=2, greeting="bonjour")})
    deployment.trueup("apply", check=True)
    assert live_greetings() == ["GREETING=bonjour"] * 2

    deployment.commit({"apps/web.yaml": web(replicas=1, greeting="bonjour")})
    scale = deployment.trueup("apply", check=True)
    assert "web scale" in scale.stdout
    assert live_greetings() == ["GREETING=bonjour"]


def test_removed_app_is_pruned(deployment: SwarmDeployment) -> None:
    """An app deleted from git loses its service (and its secrets); the others stay."""
    (deployment.secrets / "db.env").write_text("password=one\n")
    deployment.commit({"apps/web.yaml": web(replicas=1, secret=True), "apps/job.yaml": SLEEPER})
    deployment.trueup("apply", check=True)
    assert len(deployment.secret_names()) == 1
    deployment.remove_file("apps/web.yaml")
    result = deployment.trueup("apply", check=True)
    assert "- web  delete" in result.stdout
    assert deployment.services() == [f"{deployment.instance}-job"]
    assert deployment.secret_names() == []
    assert deployment.trueup("diff").returncode == 0


def test_failing_health_check_rolls_back_and_shows_degraded(deployment: SwarmDeployment) -> None:
    """A new version that never passes its check makes Swarm roll back: apply fails, the old
    task keeps serving, the app shows Degraded; reverting git heals the status."""
    deployment.commit({"apps/web.yaml": web(replicas=1)})
    deployment.trueup("apply", check=True)
    before = deployment.running_tasks("web")
    good_hash = deployment.service("web")["Spec"]["Labels"]["trueup.spec-hash"]
    broken = web(replicas=1).replace("echo ok > /tmp/healthz && ", "")
    deployment.commit({"apps/web.yaml": broken}, "break the health check")
    result = deployment.trueup("apply")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED web update" in result.stderr + result.stdout
    assert "rolled back" in result.stderr + result.stdout
    service = deployment.service("web")
    assert service["Spec"]["Labels"]["trueup.spec-hash"] == good_hash
    assert service["UpdateStatus"]["State"] == "rollback_completed"
    assert deployment.running_tasks("web") == before
    status = json.loads(deployment.trueup("status", "--output", "json", check=True).stdout)
    (app,) = status["apps"]
    assert app["health"] == "Degraded" and "rollback_completed" in app["message"]
    assert deployment.trueup("diff").returncode == 1

    deployment.commit({"apps/web.yaml": web(replicas=1)}, "revert")
    healed = deployment.trueup("apply", check=True)
    assert "web  heal" in healed.stdout
    assert deployment.running_tasks("web") == before
    status = json.loads(deployment.trueup("status", "--output", "json", check=True).stdout)
    assert status["apps"][0]["health"] == "Healthy"


def test_run_converges_and_recreates_a_removed_service(deployment: SwarmDeployment) -> None:
    """`trueup run --runtime swarm` creates the services; a service removed by hand comes
    back at once (a service event, not the 60 s resync); SIGTERM leaves it running."""
    deployment.commit({"apps/job.yaml": SLEEPER})
    cmd = [sys.executable, "-m", "controller", "run", "--runtime", "swarm", "--listen", "off"]
    cmd += ["--repo", str(deployment.repo), "--instance", deployment.instance]
    cmd += ["--state-dir", str(deployment.state), "--interval", "60s"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=deployment.env
    )
    try:
        first = wait_for(lambda: deployment.running_tasks("job"))
        deployment.api.remove_service(f"{deployment.instance}-job")
        second = wait_for(
            lambda: set(deployment.running_tasks("job").values()) - set(first.values())
        )
        assert second
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert deployment.services() == [f"{deployment.instance}-job"]


def wait_for(probe: Callable[[], T], timeout: float = 45.0) -> T:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except (docker.errors.NotFound, ValueError):  # the service is not there (yet)
            value = None  # type: ignore[assignment]
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


FILED = """\
apiVersion: trueup/v1
kind: App
metadata: {name: conf}
spec:
  image: busybox:1.36
  command: [sh, -c, "cat /etc/app/app.conf /run/secrets/pw; echo; exec sleep 3600"]
  files:
    - {path: /etc/app/app.conf, source: config/app.conf}
    - {path: /run/secrets/pw, secretRef: {name: db, key: password}}
  init: true
  stopGracePeriod: 1s
"""


def test_files_are_content_named_secrets_and_unused_ones_are_removed(
    deployment: SwarmDeployment,
) -> None:
    """A file from git and a secret file reach the task at their paths (its first output
    shows both); a commit elsewhere keeps the service's tasks; a change of the file rolls
    the service, and the secret of the old content is removed."""
    (deployment.secrets / "db.env").write_text("password=Sw4rm-Pw\n")
    deployment.commit({"apps/conf.yaml": FILED, "config/app.conf": "level=info\n"})
    deployment.trueup("apply", check=True)
    logs = deployment.trueup("logs", "conf", check=True).stdout
    assert "level=info" in logs and "Sw4rm-Pw" in logs
    before = deployment.secret_names()
    assert len(before) == 2 and not [n for n in before if "Sw4rm" in n]
    tasks = deployment.running_tasks("conf")
    deployment.commit({"README.md": "docs\n"})
    assert "in sync" in deployment.trueup("apply", check=True).stdout
    assert deployment.running_tasks("conf") == tasks
    deployment.commit({"config/app.conf": "level=debug\n"})
    assert "ok     conf update" in deployment.trueup("apply", check=True).stdout
    assert deployment.running_tasks("conf") != tasks
    assert "level=debug" in deployment.trueup("logs", "conf", check=True).stdout
    after = deployment.secret_names()
    assert len(after) == 2 and len(set(after) & set(before)) == 1  # the secret stayed
