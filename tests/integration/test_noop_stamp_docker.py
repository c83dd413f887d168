"""The memoized no-op `trueup apply` (controller.noop) against a real dockerd and git CLI.

One small deployment for the module: an app reading a file secret. Each test starts from a
converged deployment with a stamp (`converged`), checks that a repeated apply is answered from
the stamp, changes one input, and checks that the regular path answers (and does what it
should: the container is back, the new value runs) — honest status, never "in sync" from a
stale stamp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import remove_instance_objects
from tests.gitutil import commit_files, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

SECRET_VALUE = "n0op-s3cret-value-7731"

APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: job}}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  init: true
  stopGracePeriod: 1s
  env: {{GREETING: "{greeting}", DB_PASSWORD: {{secretRef: {{name: db, key: password}}}}}}
"""


@dataclass
class Site:
    repo: Path
    secrets: Path
    state: Path
    instance: str
    client: docker.DockerClient

    def apply(
        self, *extra: str, env: dict[str, str] | None = None, flags: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, *flags, "-m", "controller", "apply", "--repo", str(self.repo)]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        cmd += ["--secrets-dir", str(self.secrets), *extra]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env=env or dict(os.environ)
        )

    def job(self) -> Any:
        label = [f"trueup.instance={self.instance}", "trueup.app=job"]
        found = self.client.containers.list(ignore_removed=True, all=True, filters={"label": label})
        assert len(found) <= 1
        return found[0] if found else None

    @property
    def stamp(self) -> Path:
        return self.state / "noop-stamp.json"


def pass_event(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``reconcile_pass`` log event of an apply (stderr is JSON: not a terminal)."""
    for line in result.stderr.splitlines():
        if line.startswith("{") and '"reconcile_pass"' in line:
            event: dict[str, Any] = json.loads(line)
            return event
    raise AssertionError(f"no reconcile_pass event:\n{result.stderr}")


def fast(result: subprocess.CompletedProcess[str]) -> bool:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return pass_event(result).get("noop_stamp") is True


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("noop")
    repo, secrets = base / "repo", base / "secrets"
    secrets.mkdir()
    (secrets / "db.env").write_text(f"password={SECRET_VALUE}\n")
    make_repo(repo, {"README.md": "noop\n", "apps/job.yaml": APP.format(greeting="one")})
    client = docker.from_env()
    instance = f"t-{uuid.uuid4().hex[:10]}"
    try:
        yield Site(repo, secrets, base / "state", instance, client)
    finally:
        remove_instance_objects(client, instance)
        client.close()


@pytest.fixture
def converged(site: Site) -> Site:
    """The deployment converged, stamped, and the stamp answering the next apply."""
    for _ in range(3):
        result = site.apply()
        assert result.returncode == 0, result.stdout + result.stderr
        if site.stamp.exists():
            break
    assert site.stamp.exists()
    assert fast(site.apply())
    return site


def test_repeated_noop_apply_is_answered_from_the_stamp(converged: Site) -> None:
    """The stamped apply prints what the regular one printed, without importing click."""
    converged.stamp.unlink()
    regular = converged.apply()
    assert not fast(regular) and "in sync: nothing to do" in regular.stdout
    again = converged.apply(flags=("-X", "importtime"))
    assert again.returncode == 0
    assert again.stdout == regular.stdout
    loaded = {line.rsplit("|", 1)[-1].strip() for line in again.stderr.splitlines()}
    assert "controller.noop.fast" in loaded  # the listing is of imports
    assert not loaded & {"click", "asyncio", "structlog", "dulwich", "controller.cli.main"}
    event = pass_event(again)
    assert event["noop_stamp"] is True and event["changes"] == 0
    assert event["revision"] == pass_event(regular)["revision"]
    assert converged.stamp.stat().st_mode & 0o777 == 0o600
    assert SECRET_VALUE not in converged.stamp.read_text()


def test_new_commit_outside_the_manifests_falls_back(converged: Site) -> None:
    """A commit that touches no manifest: the regular path answers (in sync, new revision)."""
    sha = commit_files(converged.repo, {"README.md": "changed\n"}, "docs")
    result = converged.apply()
    assert not fast(result)
    assert pass_event(result)["revision"] == sha and "in sync" in result.stdout


def test_new_commit_inside_the_manifests_applies_it(converged: Site) -> None:
    """A changed manifest is applied (the stamp never hides a pending change)."""
    before = converged.job().id
    commit_files(converged.repo, {"apps/job.yaml": APP.format(greeting="two")}, "greet")
    result = converged.apply()
    assert not fast(result) and "ok     job" in result.stdout
    job = converged.job()
    assert job.id != before and "GREETING=two" in job.attrs["Config"]["Env"]


def test_the_noop_after_a_converging_apply_is_answered_from_the_stamp(converged: Site) -> None:
    """An apply that changed something stamps the no-op after it (the plan made again from
    its after-apply look is in sync): the next identical apply is answered from the stamp and
    prints exactly what a regular no-op prints."""
    commit_files(converged.repo, {"apps/job.yaml": APP.format(greeting="three")}, "greet 3")
    changed = converged.apply()
    assert not fast(changed) and "ok     job update" in changed.stdout
    assert converged.stamp.exists()
    after = converged.apply()
    assert fast(after)
    assert "GREETING=three" in converged.job().attrs["Config"]["Env"]
    converged.stamp.unlink()
    regular = converged.apply()
    assert not fast(regular)
    assert after.stdout == regular.stdout and "in sync: nothing to do" in after.stdout


def test_a_converging_apply_probed_for_readiness_is_stamped_too(converged: Site) -> None:
    """A replacement that declares a port is ready once the port accepts a connection (the
    readiness probe's TCP connect to it): that connect is not an input of the no-op after it,
    so the apply still stamps (it refused to before the probe was exempted)."""
    serving = (
        APP.format(greeting="listening").replace(
            'command: [sleep, "3600"]', 'command: [httpd, -f, -p, "8080"]'
        )
        + "  ports: [{name: http, containerPort: 8080}]\n"
    )
    commit_files(converged.repo, {"apps/job.yaml": serving}, "serve on 8080")
    changed = converged.apply()
    assert not fast(changed) and "ok     job update" in changed.stdout
    assert converged.stamp.exists()
    assert fast(converged.apply())
    assert "GREETING=listening" in converged.job().attrs["Config"]["Env"]


def test_a_replacement_that_dies_after_the_apply_is_healed_not_stamped_in_sync(
    converged: Site,
) -> None:
    """The after-apply stamp holds the look at the engine after apply: a replacement that
    exits afterwards changes the list answer, so the next apply is a regular pass that heals
    it (never "in sync" from the stamp)."""
    commit_files(converged.repo, {"apps/job.yaml": APP.format(greeting="four")}, "greet 4")
    assert not fast(converged.apply())
    assert converged.stamp.exists()
    subprocess.run(["docker", "kill", converged.job().id], check=True, capture_output=True)
    healed = converged.apply()
    assert not fast(healed) and "heal" in healed.stdout
    assert converged.job().status == "running"


@pytest.mark.parametrize("how", ["stop", "kill", "remove"])
def test_container_changed_by_hand_is_restored(converged: Site, how: str) -> None:
    """A container stopped, killed or removed with the docker CLI: the regular path runs
    and the app runs again."""
    job = converged.job()
    args = {"stop": ["stop", "-t", "1"], "kill": ["kill"], "remove": ["rm", "-f"]}[how]
    subprocess.run(["docker", *args, job.id], check=True, capture_output=True)
    result = converged.apply()
    assert not fast(result)
    assert converged.job().status == "running"


def test_foreign_container_with_the_instance_label_falls_back(converged: Site) -> None:
    """Another container carrying the instance's label changes the list answer."""
    name = f"{converged.instance}-intruder"
    subprocess.run(
        ["docker", "create", "--name", name, "--label", f"trueup.instance={converged.instance}",
         "busybox:1.36", "true"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        assert not fast(converged.apply())
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)


def test_secret_file_touched_or_changed(converged: Site) -> None:
    """A touched secret file falls back (in sync); a changed value is applied."""
    secret = converged.secrets / "db.env"
    os.utime(secret)
    touched = converged.apply()
    assert not fast(touched) and "in sync" in touched.stdout
    assert fast(converged.apply())
    secret.write_text("password=another-value-42\n")
    changed = converged.apply()
    assert not fast(changed) and "ok     job" in changed.stdout
    assert "DB_PASSWORD=another-value-42" in converged.job().attrs["Config"]["Env"]
    secret.write_text(f"password={SECRET_VALUE}\n")
    (converged.secrets / "other.env").write_text("x=1\n")  # a new file in the listing
    assert not fast(converged.apply())
    (converged.secrets / "other.env").unlink()


def test_environment_or_argv_difference_falls_back(converged: Site) -> None:
    """An environment variable an option reads, or other arguments: the regular path."""
    assert not fast(converged.apply(env={**os.environ, "TRUEUP_ROUTER": "none"}))
    assert not fast(converged.apply("--path", "apps"))
    assert not fast(
        converged.apply(env={**os.environ, "DOCKER_HOST": "unix:///var/run/docker.sock"})
    )


def test_stamp_of_other_code_or_damaged_is_ignored(converged: Site) -> None:
    """A stamp made by other trueup code, truncated, garbled or of another format is ignored
    (the regular path answers, no traceback) and replaced by a good one."""
    good = converged.stamp.read_text()
    doc = json.loads(good)
    damaged = [
        json.dumps({**doc, "code": "0" * 64}),
        good[: len(good) // 2],
        "not json at all",
        json.dumps({**doc, "format": 0}),
        json.dumps({**doc, "files": 5}),
        json.dumps({**doc, "engine": {"socket": "/nonexistent.sock", "request": "/"}}),
    ]
    for text in damaged:
        converged.stamp.write_text(text)
        result = converged.apply()
        assert not fast(result) and "in sync" in result.stdout
        assert json.loads(converged.stamp.read_text())["code"] == doc["code"]
