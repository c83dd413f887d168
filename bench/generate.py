"""N equivalent services, written both as trueup manifests (in a git repo) and as a compose file.

Every service is the same small workload: busybox's httpd in the foreground under an init,
restarted always, no health check, its port 8080 declared (a manifest's ``ports``, Compose's
``expose``) but not published. trueup and Compose get exactly the same image, command,
environment, init, restart policy and declared port; a "one-service change" edits the
environment of the first service in both. One service (`STOP_FIRST`) is updated stop-first by
trueup, the way Compose updates every service.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

IMAGE = "busybox:1.36"
COMMAND = ("httpd", "-f", "-p", "8080")


def service_names(n: int) -> list[str]:
    """``svc-001`` ... ``svc-NNN``: sorted names, valid DNS labels and compose service names."""
    width = max(3, len(str(n)))
    return [f"svc-{i:0{width}d}" for i in range(1, n + 1)]


def release_of(name: str, changed: frozenset[str]) -> str:
    return "2" if name in changed else "1"


STOP_FIRST = "svc-003"
"""The service trueup updates with ``update: stop-first`` (as Compose updates every service):
the *change_stop* scenario edits it."""


def manifest(name: str, release: str) -> str:
    """One trueup App manifest (`STOP_FIRST` is updated stop-first, the others start-first)."""
    command = ", ".join(f'"{part}"' for part in COMMAND)
    update = "  update: {strategy: stop-first}\n" if name == STOP_FIRST else ""
    return (
        "apiVersion: trueup/v1\n"
        "kind: App\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        f"  image: {IMAGE}\n"
        f"  command: [{command}]\n"
        f'  env: {{RELEASE: "{release}"}}\n'
        "  init: true\n"
        "  restartPolicy: always\n"
        "  ports: [{name: http, containerPort: 8080}]\n"
        f"{update}"
    )


def manifests(n: int, changed: frozenset[str] = frozenset()) -> dict[str, str]:
    """``apps/<name>.yaml`` for every service; the ``changed`` ones carry RELEASE=2."""
    return {
        f"apps/{name}.yaml": manifest(name, release_of(name, changed)) for name in service_names(n)
    }


def compose_file(n: int, changed: frozenset[str] = frozenset()) -> str:
    """The same services as one compose file (file format 2.4: Compose v1 and v2 both read it)."""
    lines = ['version: "2.4"', "services:"]
    command = ", ".join(f'"{part}"' for part in COMMAND)
    for name in service_names(n):
        lines += [
            f"  {name}:",
            f"    image: {IMAGE}",
            f"    command: [{command}]",
            f'    environment: {{RELEASE: "{release_of(name, changed)}"}}',
            "    init: true",
            "    restart: always",
            '    expose: ["8080"]',
        ]
    return "\n".join(lines) + "\n"


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    """Write ``files`` into ``repo``, commit them with the git CLI, return the new sha."""
    for rel, text in files.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def make_repo(repo: Path, n: int) -> str:
    """A fresh git repository at ``repo`` with N manifests under ``apps/``; returns the sha."""
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    return commit(repo, manifests(n), f"{n} services")


def write_compose(folder: Path, n: int, changed: frozenset[str] = frozenset()) -> Path:
    """Write ``compose.yaml`` into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "docker-compose.yml"
    path.write_text(compose_file(n, changed), encoding="utf-8")
    return path
