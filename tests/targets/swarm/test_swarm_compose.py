"""The compose example on a swarm: the same compose file deploys as services (built image
pushed to the lab's registry, so a task on a worker finds it; health checks, repo config and
host secret as Swarm secrets, the compose-named volume, the project's overlay network), and
the next diff is in sync."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.gitutil import commit_files
from tests.targets.swarm.conftest import SwarmDeployment

pytestmark = [pytest.mark.integration]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "compose" / "shop"


def test_the_compose_example_deploys_as_services(deployment: SwarmDeployment) -> None:
    """`trueup apply --runtime swarm` makes one service per compose service, each task
    running, the db mounting `<project>_db-data`, both on the project's network."""
    project = f"s{uuid.uuid4().hex[:8]}"
    shutil.copytree(EXAMPLE, deployment.repo / "stacks/shop")
    compose = deployment.repo / "stacks/shop/compose.yaml"
    compose.write_text(compose.read_text().replace("name: shop\n", f"name: {project}\n"))
    commit_files(deployment.repo, {}, "the compose example")
    (deployment.secrets / "db_password").write_text("Pa55-on-the-swarm\n")
    deployment.extra_env["TRUEUP_SWARM_REGISTRY"] = deployment.lab.registry  # several nodes
    applied = deployment.trueup("apply", check=True)
    for service in ("db", "web"):
        assert f"ok     {project}-{service} create" in applied.stdout, applied.stdout
        assert deployment.running_tasks(f"{project}-{service}"), service
    db = deployment.service(f"{project}-db")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert [m["Source"] for m in db["Mounts"]] == [f"{project}_db-data"]
    assert [s["File"]["Name"] for s in db.get("Secrets", [])] == ["/run/secrets/db_password"]
    web = deployment.service(f"{project}-web")["Spec"]["TaskTemplate"]
    assert web["ContainerSpec"]["Image"].startswith(f"{deployment.lab.registry}/trueup/")
    aliases = [n.get("Aliases") for n in web["Networks"]]
    assert aliases == [["web"]]
    assert deployment.trueup("diff").returncode == 0
