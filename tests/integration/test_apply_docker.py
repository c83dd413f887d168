"""`trueup apply` and `trueup diff` against a real dockerd and a real git repository.

Each test drives the CLI as an operator would (a subprocess, commits made with the git CLI)
and checks the engine itself with the docker SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.gitutil import commit_files, git, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_engine")]

HEALTHY_HTTP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command: [sh, -c, "echo ok > /tmp/healthz && exec httpd -f -p 8080 -h /tmp"]
  replicas: {replicas}
  env: {{GREETING: "{greeting}"}}
  ports: [{{name: http, containerPort: 8080}}]
  healthCheck: {{http: {{path: /healthz, port: http}}, interval: 1s, timeout: 1s, retries: 2}}
  init: true
  stopGracePeriod: 1s
"""

SLEEPER = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  command: [sleep, "3600"]
  init: true
  stopGracePeriod: 1s
{extra}"""

BUILT = """\
apiVersion: trueup/v1
kind: App
metadata: {name: site}
spec:
  build: {context: services/site}
  init: true
  stopGracePeriod: 1s
"""

DOCKERFILE = 'FROM busybox:1.36\nCOPY index.html /www/index.html\nCMD ["sleep", "3600"]\n'


def http_app(name: str, replicas: int = 1, greeting: str = "hello") -> str:
    return HEALTHY_HTTP.format(name=name, replicas=replicas, greeting=greeting)


def sleeper(name: str, extra: str = "") -> str:
    return SLEEPER.format(name=name, extra=textwrap.indent(extra, "  "))


@dataclass
class Deployment:
    """A git repo of manifests plus the instance name that trueup manages it under."""

    repo: Path
    instance: str
    state: Path
    client: docker.DockerClient

    def trueup(
        self, *args: str, check: bool = False, python_flags: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, *python_flags, "-m", "controller", *args, "--repo", str(self.repo)]
        cmd += ["--instance", self.instance, "--state-dir", str(self.state)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        return commit_files(self.repo, files, message)

    def remove_file(self, rel: str) -> str:
        git(self.repo, "rm", "-q", rel)
        git(self.repo, "commit", "-q", "-m", f"remove {rel}")
        return git(self.repo, "rev-parse", "HEAD")

    def containers(self, app: str | None = None) -> list[docker.models.containers.Container]:
        label = [f"trueup.instance={self.instance}"]
        if app:
            label.append(f"trueup.app={app}")
        return self.client.containers.list(ignore_removed=True, all=True, filters={"label": label})

    def ids(self) -> set[str]:
        return {c.id for c in self.containers()}


@pytest.fixture
def deployment(tmp_path: Path, instance: str) -> Iterator[Deployment]:
    client = docker.from_env()
    repo = tmp_path / "repo"
    make_repo(repo, {"README.md": "deployment repo\n"})
    try:
        yield Deployment(repo, instance, tmp_path / "state", client)
    finally:
        client.close()


def test_first_apply_then_noop(deployment: Deployment) -> None:
    """First apply creates every replica healthy; a second apply touches nothing."""
    deployment.commit(
        {"apps/web.yaml": http_app("web", replicas=2), "apps/job.yaml": sleeper("job")}
    )
    first = deployment.trueup("apply", check=True)
    assert "ok     web create" in first.stdout
    web = deployment.containers("web")
    assert sorted(c.labels["trueup.replica"] for c in web) == ["0", "1"]
    assert all(c.attrs["State"]["Health"]["Status"] == "healthy" for c in web)
    before = deployment.ids()
    # the converging apply stamped the no-op after it (controller.noop); this test is about
    # the regular no-op pass, so the stamp goes (tests/integration/test_noop_stamp_docker.py)
    stamp = deployment.state / "noop-stamp.json"
    assert stamp.exists()
    stamp.unlink()
    # -X importtime lists every module the process loaded (on stderr): with the manifests
    # unchanged, the second apply restores the desired state from the state dir and never
    # loads the manifest models or YAML (start-up time is most of a no-op apply).
    second = deployment.trueup("apply", check=True, python_flags=("-X", "importtime"))
    assert "in sync: nothing to do" in second.stdout
    assert deployment.ids() == before
    loaded = {line.rsplit("|", 1)[-1].strip() for line in second.stderr.splitlines()}
    assert "pydantic" not in loaded and "yaml" not in loaded
    # nor the commands it does not run (imported when looked up: see controller.cli.main)
    assert not loaded & {
        "controller.cli.inspect",
        "controller.cli.run",
        "controller.cli.notify",
        "controller.cli.convert",
    }
    # nor what only a load, a decryption, a compose project, templates or the daemon need
    assert not loaded & {
        "controller.manifests.loader",
        "controller.compose",
        "controller.sops.identities",
        "controller.sops.age",
        "cryptography",
        "jinja2",
        "aiohttp",
        "prometheus_client",
        "apprise",
        "docker",
    }
    assert "controller.runtime.docker" in loaded  # the listing really is of imports
    assert deployment.trueup("diff").returncode == 0


def test_diff_is_read_only(deployment: Deployment) -> None:
    """diff reports pending creates with exit 1 and creates, builds or changes nothing."""
    deployment.commit({"apps/web.yaml": http_app("web"), "apps/site.yaml": BUILT,
                       "services/site/Dockerfile": DOCKERFILE,
                       "services/site/index.html": "v1\n"})  # fmt: skip
    images_before = {i.id for i in deployment.client.images.list()}
    result = deployment.trueup("diff", "--output", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"revision", "in_sync", "changes", "errors"}
    assert [(c["app"], c["action"]) for c in doc["changes"]] == [
        ("site", "create"),
        ("web", "create"),
    ]
    assert deployment.containers() == []
    assert {i.id for i in deployment.client.images.list()} == images_before
    nets = deployment.client.networks.list(names=[f"trueup-{deployment.instance}"])
    assert nets == []


def test_build_cached_by_context_tree(deployment: Deployment) -> None:
    """A commit outside the build context reuses the image; a change inside rebuilds it;
    `diff` names a build only when one will happen."""
    unique = deployment.instance  # fresh content, so no earlier run's image can be reused
    deployment.commit({"apps/site.yaml": BUILT, "services/site/Dockerfile": DOCKERFILE,
                       "services/site/index.html": f"v1 {unique}\n"})  # fmt: skip
    assert "(build trueup/site:" in deployment.trueup("diff").stdout
    first_apply = deployment.trueup("apply", check=True)
    assert "(build trueup/site:" in first_apply.stdout
    (first,) = deployment.containers("site")
    tag = first.attrs["Config"]["Image"]
    deployment.commit({"README.md": "docs only\n"})
    second = deployment.trueup("apply", check=True)
    assert "build" not in second.stdout and "in sync" in second.stdout
    assert deployment.containers("site")[0].id == first.id
    first.remove(force=True)  # recreated from the cached image: no build announced
    healed = deployment.trueup("apply", check=True)
    assert "+ site  create" in healed.stdout and "build" not in healed.stdout
    deployment.commit({"services/site/index.html": f"v2 {unique}\n"})
    third = deployment.trueup("apply", check=True)
    assert "(build trueup/site:" in third.stdout
    (now,) = deployment.containers("site")
    assert now.attrs["Config"]["Image"] != tag
    out = now.exec_run(["cat", "/www/index.html"]).output.decode()
    assert out == f"v2 {unique}\n"
    for image in {tag, now.attrs["Config"]["Image"]}:
        deployment.client.images.remove(image, force=True)


def test_field_update_rolls_with_diff(deployment: Deployment) -> None:
    """A changed env value is shown per field by diff, then rolled out by apply."""
    deployment.commit({"apps/web.yaml": http_app("web", replicas=2, greeting="hello")})
    deployment.trueup("apply", check=True)
    old = deployment.ids()
    deployment.commit({"apps/web.yaml": http_app("web", replicas=2, greeting="bonjour")})
    diff = deployment.trueup("diff")
    assert diff.returncode == 1
    assert 'spec.env.GREETING: "hello" → "bonjour"' in diff.stdout
    deployment.trueup("apply", check=True)
    web = deployment.containers("web")
    assert len(web) == 2 and {c.id for c in web}.isdisjoint(old)
    assert all("GREETING=bonjour" in c.attrs["Config"]["Env"] for c in web)
    assert deployment.trueup("diff").returncode == 0


def test_never_healthy_update_keeps_old_serving(deployment: Deployment) -> None:
    """A new version that never passes its check is removed; the old one keeps running."""
    deployment.commit({"apps/web.yaml": http_app("web")})
    deployment.trueup("apply", check=True)
    (old,) = deployment.containers("web")
    broken = http_app("web").replace("echo ok > /tmp/healthz && ", "")
    deployment.commit({"apps/web.yaml": broken})
    result = deployment.trueup("apply")
    assert result.returncode == 1
    assert "FAILED web update" in result.stdout + result.stderr
    (still,) = deployment.containers("web")
    assert still.id == old.id and still.status == "running"


def test_heal_after_rm(deployment: Deployment) -> None:
    """A replica removed with `docker rm -f` is recreated by the next apply."""
    deployment.commit({"apps/web.yaml": http_app("web", replicas=2)})
    deployment.trueup("apply", check=True)
    victim = next(c for c in deployment.containers("web") if c.labels["trueup.replica"] == "1")
    victim.remove(force=True)
    diff = deployment.trueup("diff")
    assert "~ web  heal" in diff.stdout and "replica 1 missing" in diff.stdout
    deployment.trueup("apply", check=True)
    assert sorted(c.labels["trueup.replica"] for c in deployment.containers("web")) == ["0", "1"]


def test_prune_keeps_volumes(deployment: Deployment) -> None:
    """Deleting an app's manifest removes its containers but never its named volume."""
    extra = "volumes: [{name: data, mountPath: /data}]\n"
    volume = f"trueup-{deployment.instance}_data"  # the engine name: scoped to the instance
    deployment.commit({"apps/db.yaml": sleeper("db", extra), "apps/web.yaml": http_app("web")})
    deployment.trueup("apply", check=True)
    (db,) = deployment.containers("db")
    db.exec_run(["sh", "-c", "echo precious > /data/file"])
    deployment.remove_file("apps/db.yaml")
    result = deployment.trueup("apply", check=True)
    assert "- db  delete" in result.stdout
    assert deployment.containers("db") == []
    try:
        vol = deployment.client.volumes.get(volume)
        check = deployment.client.containers.run(
            "busybox:1.36", ["cat", "/data/file"], volumes={volume: {"bind": "/data"}}, remove=True
        )
        assert check == b"precious\n"
    finally:
        deployment.client.volumes.get(volume).remove(force=True)
    assert vol is not None


def test_broken_manifest_isolated(deployment: Deployment) -> None:
    """A broken file: other apps still update, nothing is pruned, apply exits 2 naming it."""
    deployment.commit({"apps/web.yaml": http_app("web"), "apps/job.yaml": sleeper("job"),
                       "apps/old.yaml": sleeper("old")})  # fmt: skip
    deployment.trueup("apply", check=True)
    (job,) = deployment.containers("job")
    deployment.remove_file("apps/old.yaml")
    broken = "apiVersion: trueup/v1\nkind: App\nmetadata: {name: job\n"
    deployment.commit(
        {"apps/web.yaml": http_app("web", greeting="changed"), "apps/job.yaml": broken}
    )
    result = deployment.trueup("apply")
    assert result.returncode == 2
    assert "apps/job.yaml:4:1: YAML syntax error" in result.stdout
    assert "ok     web update" in result.stdout
    assert all("GREETING=changed" in c.attrs["Config"]["Env"] for c in deployment.containers("web"))
    assert [c.id for c in deployment.containers("job")] == [job.id]
    assert len(deployment.containers("old")) == 1


def test_deleting_every_app_refused(deployment: Deployment) -> None:
    """A commit that removes every manifest is refused unless --allow-empty, and that is out
    of sync: diff and apply exit 1 saying so (text and JSON), and both apps keep running."""
    deployment.commit({"apps/job.yaml": sleeper("job"), "apps/web.yaml": http_app("web")})
    deployment.trueup("apply", check=True)
    running = deployment.ids()
    git(deployment.repo, "rm", "-q", "apps/job.yaml", "apps/web.yaml")
    deployment.commit({"README.md": "no apps any more\n"}, "remove every app")
    diff = deployment.trueup("diff")
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "in sync" not in diff.stdout
    assert "refusing to delete every managed app (2)" in diff.stdout
    assert "deleting 2 app(s) refused (pass --allow-empty to allow it)" in diff.stdout
    doc = json.loads(deployment.trueup("diff", "--output", "json").stdout)
    assert doc["in_sync"] is False and doc["changes"] == []
    assert [(r["app"], r["action"]) for r in doc["refused"]] == [
        ("job", "delete"),
        ("web", "delete"),
    ]
    refused = deployment.trueup("apply")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "in sync" not in refused.stdout
    assert "REFUSED job delete:" in refused.stdout and "--allow-empty" in refused.stdout
    assert deployment.ids() == running
    assert all(c.status == "running" for c in deployment.containers())
    deployment.trueup("apply", "--allow-empty", check=True)
    assert deployment.containers() == []


def test_secret_reaches_container_not_diff(deployment: Deployment, tmp_path: Path) -> None:
    """A secretRef is resolved from the secrets dir into the container; diff shows no value."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db.env").write_text("password=s3cr3t-one\n")
    extra = "env: {DB_PASSWORD: {secretRef: {name: db, key: password}}}\n"
    deployment.commit({"apps/job.yaml": sleeper("job", extra)})
    deployment.trueup("apply", "--secrets-dir", str(secrets), check=True)
    (job,) = deployment.containers("job")
    assert "DB_PASSWORD=s3cr3t-one" in job.attrs["Config"]["Env"]
    assert "s3cr3t-one" not in json.dumps(job.labels)
    (secrets / "db.env").write_text("password=s3cr3t-two\n")
    for output in ("text", "json"):
        diff = deployment.trueup("diff", "--secrets-dir", str(secrets), "--output", output)
        assert diff.returncode == 1
        assert "(secret changed)" in diff.stdout
        assert "s3cr3t" not in diff.stdout + diff.stderr
    missing = deployment.trueup("diff", "--secrets-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "secret 'db' not found" in missing.stdout
    # the manifests did not change, but the secret did: apply still replaces the container
    deployment.trueup("apply", "--secrets-dir", str(secrets), check=True)
    (job,) = deployment.containers("job")
    assert "DB_PASSWORD=s3cr3t-two" in job.attrs["Config"]["Env"]
    for path in deployment.state.rglob("*"):  # nothing trueup keeps holds the value
        assert not path.is_file() or b"s3cr3t" not in path.read_bytes(), path


def test_a_bad_dockerignore_pattern_fails_only_its_app(deployment: Deployment) -> None:
    """A committed .dockerignore line that is no pattern (``[z-a]``) fails the app built from
    that context with the line named; the other apps apply, and there is no traceback."""
    deployment.commit({"apps/site.yaml": BUILT, "services/site/Dockerfile": DOCKERFILE,
                       "services/site/index.html": "v1\n",
                       "services/site/.dockerignore": "*.log\n[z-a]\n",
                       "apps/job.yaml": sleeper("job")})  # fmt: skip
    result = deployment.trueup("apply")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert ".dockerignore line 2: cannot match '[z-a]'" in result.stdout
    assert "ok     job create" in result.stdout
    assert deployment.containers("site") == []
    assert len(deployment.containers("job")) == 1


def test_a_suspended_app_is_held_by_a_one_shot_apply_too(deployment: Deployment) -> None:
    """`trueup suspend web` (offline: no controller runs) holds web for `diff` and `apply`:
    the newer commit's change is shown as held, not applied, and neither says "in sync"
    (exit 1); after `trueup resume web` the same apply replaces it."""
    deployment.commit({"apps/web.yaml": sleeper("web"), "apps/job.yaml": sleeper("job")})
    deployment.trueup("apply", check=True)
    (before,) = deployment.containers("web")
    override = ["--instance", deployment.instance, "--state-dir", str(deployment.state)]
    subprocess.run(
        [sys.executable, "-m", "controller", "suspend", "web", *override],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    deployment.commit({"apps/web.yaml": sleeper("web", 'env: {RELEASE: "2"}\n')})
    diff = deployment.trueup("diff")
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "= web  left alone: held: suspended" in diff.stdout
    assert "in sync" not in diff.stdout and "1 held by trueup suspend (web)" in diff.stdout
    as_json = json.loads(deployment.trueup("diff", "--output", "json").stdout)
    assert as_json["in_sync"] is False and as_json["held"] == ["web"]
    held = deployment.trueup("apply")
    assert held.returncode == 1, held.stdout + held.stderr
    (still,) = deployment.containers("web")
    assert still.id == before.id and "RELEASE=2" not in (still.attrs["Config"]["Env"] or [])
    subprocess.run(
        [sys.executable, "-m", "controller", "resume", "web", *override],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    resumed = deployment.trueup("apply")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (after,) = deployment.containers("web")
    assert after.id != before.id and "RELEASE=2" in after.attrs["Config"]["Env"]
