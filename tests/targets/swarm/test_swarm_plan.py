"""The swarm plan, the service spec and the task view: pure, no engine."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from controller.cli.render import plan_json
from controller.daemon.status import summarize
from controller.desired.policy import Policy
from controller.desired.resolve import DesiredApp, resolve_app
from controller.desired.secrets import SecretStore
from controller.errors import PolicyError
from controller.planning import PlanOptions
from controller.runtime.archive import FileContent
from controller.runtime.swarm_base import ServiceInfo, SwarmSnapshot, TaskInfo, task_rows
from controller.source.files import SourceDigest
from controller.targets.observed import ObservedState
from controller.targets.swarm.plan import (
    make_swarm_plan,
    observation,
    service_name,
    service_spec,
)
from tests.builders import T0, app, desired, desired_app

I = "test"  # noqa: E741  # the instance name, short on purpose


def service(want: DesiredApp, *, replicas: int | None = None, **kw: Any) -> ServiceInfo:
    """The service trueup would have created for ``want``."""
    spec = service_spec(want, instance=I, revision="r0")
    return ServiceInfo(
        id=f"id-{spec.name}",
        name=spec.name,
        labels=dict(spec.labels),
        image=spec.image,
        replicas=spec.replicas if replicas is None else replicas,
        version=7,
        update_order=spec.order,
        **kw,
    )


def test_actions_mirror_the_container_plan() -> None:
    """New app: create; changed env: update with the field; replica count: scale; gone from
    git: delete of its service. Same JSON shape as the container plan."""
    web_old = desired_app("web", env={"GREETING": "hello"})
    web = desired_app("web", env={"GREETING": "bonjour"})
    api = desired_app("api", replicas=3)
    job = desired_app("job")
    p = make_swarm_plan(
        desired(web, api, desired_app("new")),
        (service(web_old), service(api, replicas=2), service(job)),
        ObservedState(),
        instance=I,
    )
    doc = plan_json(p, [])
    assert [(c["app"], c["action"]) for c in doc["changes"]] == [
        ("api", "scale"),
        ("new", "create"),
        ("web", "update"),
        ("job", "delete"),
    ]
    by_app = {c["app"]: c for c in doc["changes"]}
    assert by_app["web"]["fields"] == [
        {"path": "spec.env.GREETING", "before": "hello", "after": "bonjour"}
    ]
    assert by_app["api"]["fields"] == [{"path": "spec.replicas", "before": 2, "after": 3}]
    delete = next(c for c in p.changes if c.app == "job")
    assert delete.remove == ("id-test-job",)


def test_in_sync_services_plan_nothing_and_prune_guards_hold() -> None:
    """Matching services: no change. Every app gone from git: the delete is refused."""
    web = desired_app("web", replicas=2)
    assert make_swarm_plan(desired(web), (service(web),), ObservedState(), instance=I).in_sync
    refused = make_swarm_plan(desired(), (service(web),), ObservedState(), instance=I)
    assert refused.changes == () and not refused.in_sync  # nothing deleted, out of sync
    assert "refusing to delete every managed app" in refused.notes[0]


def test_failed_rollout_of_the_desired_spec_is_healed() -> None:
    """A service on the desired spec that Swarm still reports rolled back gets a heal."""
    web = desired_app("web")
    rolled = service(web, update_state="rollback_completed")
    (change,) = make_swarm_plan(desired(web), (rolled,), ObservedState(), instance=I).changes
    assert change.action == "heal" and "rollback_completed" in change.reasons[0]


def test_service_spec_carries_labels_secrets_and_strategy() -> None:
    """Ownership labels as on containers; a secretRef is a content-named Swarm secret file
    (``VAR_FILE`` names it) that changes name when the value rotates; volumes mean
    stop-first; Swarm-impossible powers are refused."""
    store = SecretStore({"db": {"password": "one"}})
    env = {"DB_PASSWORD": {"secretRef": {"name": "db", "key": "password"}}, "A": "1"}
    web = desired_app("web", secrets=store, env=env)
    spec = service_spec(web, instance=I, revision="abc")
    assert spec.name == "test-web" and spec.labels["trueup.spec-hash"] == web.spec_hash
    assert spec.labels["trueup.revision"] == "abc" and spec.order == "start-first"
    assert spec.env == {"A": "1", "DB_PASSWORD_FILE": "/run/secrets/DB_PASSWORD"}
    (secret,) = spec.secrets
    assert secret.file == "DB_PASSWORD" and secret.data == "one" and "one" not in secret.name
    rotated = desired_app("web", secrets=SecretStore({"db": {"password": "two"}}), env=env)
    assert service_spec(rotated, instance=I, revision="abc").secrets[0].name != secret.name
    with_volume = desired_app("db", volumes=[{"name": "data", "mountPath": "/data"}])
    assert service_spec(with_volume, instance=I, revision=None).order == "stop-first"
    with pytest.raises(PolicyError):
        service_spec(desired_app("p", privileged=True), instance=I, revision=None)
    assert len(service_name("a" * 32, "b" * 63)) <= 63


def test_files_are_content_named_secrets_at_their_paths() -> None:
    """Each ``spec.files`` file is a Swarm secret mounted at its path with its mode and
    owner, named by a digest (never the value); changed content is a new name."""
    store = SecretStore({"db": {"password": "one"}})
    files = [{"path": "/run/secrets/pw", "secretRef": {"name": "db", "key": "password"},
              "owner": "10:20"}, {"path": "/etc/a.conf", "source": "config/a.conf"}]  # fmt: skip
    want = resolve_app(
        app("f", files=files),
        file="apps/f.yaml",
        secrets=store,
        context_ids={},
        policy=Policy(),
        file_sources={"config/a.conf": SourceDigest(False, "sha256:" + "a" * 64, 4)},
    )
    with_data = dataclasses.replace(
        want,
        file_contents=(
            FileContent("/run/secrets/pw", 0o400, 10, 20, b"one"),
            FileContent("/etc/a.conf", 0o444, data=b"x=1\n"),
        ),
    )
    mounts = {m.file: m for m in service_spec(with_data, instance=I, revision=None).secrets}
    assert {p: (m.mode, m.uid, m.gid, m.data) for p, m in mounts.items()} == {
        "/run/secrets/pw": (0o400, 10, 20, b"one"),
        "/etc/a.conf": (0o444, 0, 0, b"x=1\n"),
    }
    assert all(m.name.startswith(f"trueup-{I}-") and "one" not in m.name for m in mounts.values())
    changed = dataclasses.replace(
        with_data, file_contents=(*with_data.file_contents[:1], FileContent("/etc/a.conf", 0o444))
    )
    again = {m.file: m.name for m in service_spec(changed, instance=I, revision=None).secrets}
    assert again["/etc/a.conf"] != mounts["/etc/a.conf"].name
    assert again["/run/secrets/pw"] == mounts["/run/secrets/pw"].name


def _task(slot: int, state: str, desired_state: str = "running", age: int = 0) -> TaskInfo:
    return TaskInfo(
        id=f"task-{slot}-{state}-{age}",
        service_id="id-test-web",
        slot=slot,
        node_id="n1",
        state=state,
        desired_state=desired_state,
        message=state,
        error="task: non-zero exit (1)" if state == "failed" else "",
        timestamp=T0 + timedelta(seconds=age),
        exit_code=1 if state == "failed" else None,
    )


def test_task_view_health_follows_tasks_and_swarm_rollouts() -> None:
    """Running tasks of every slot: Healthy. A crash-looping slot: Degraded. Swarm updating:
    Progressing; rolled back: Degraded with Swarm's message. Rows carry the VIP."""
    web = desired_app("web", replicas=2)

    def health(tasks: tuple[TaskInfo, ...], **kw: Any) -> tuple[str, str]:
        snap = SwarmSnapshot((service(web, vip="10.0.1.2", **kw),), tasks)
        (status,) = summarize(observation(snap, instance=I))
        return status.health, status.message

    running = (_task(1, "running"), _task(2, "running"))
    assert health(running)[0] == "Healthy"
    looping = (_task(1, "running"), _task(2, "failed", "shutdown", 1), _task(2, "ready", age=2))
    assert health(looping)[0] == "Degraded"
    assert health(running, update_state="updating")[0] == "Progressing"
    state, message = health(
        running, update_state="rollback_completed", update_message="rollback completed"
    )
    assert state == "Degraded" and "rollback_completed" in message
    rows = task_rows(SwarmSnapshot((service(web, vip="10.0.1.2"),), running))
    assert {r.ip_address for r in rows} == {"10.0.1.2"}
    assert sorted(r.replica or 0 for r in rows) == [1, 2]


def test_a_task_of_the_current_spec_has_the_services_template_digest() -> None:
    """A task's copy of the template (the engine leaves out ``Runtime``) digests like the
    service's template; a task of an earlier spec (another env) does not."""
    from controller.runtime.swarm import service_info, task_info

    template = {
        "ContainerSpec": {"Image": "busybox:1.36", "Env": ["GREETING=bonjour"], "Init": True},
        "Resources": {"Limits": {"MemoryBytes": 67108864}},
        "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0},
        "Networks": [{"Target": "net1", "Aliases": ["web"]}],
        "ForceUpdate": 0,
    }
    service = service_info(
        {
            "ID": "s1",
            "Spec": {"Name": "t-web", "TaskTemplate": {**template, "Runtime": "container"}},
        }
    )
    current = task_info({"ID": "t1", "ServiceID": "s1", "Spec": template})
    old_env = {
        **template,
        "ContainerSpec": {**template["ContainerSpec"], "Env": ["GREETING=hello"]},
    }
    old = task_info({"ID": "t0", "ServiceID": "s1", "Spec": old_env})
    assert service.template_digest and current.template_digest == service.template_digest
    assert old.template_digest != service.template_digest


def test_the_swarm_observation_plans_against_its_services_and_carries_rollouts() -> None:
    """`observation` of a snapshot: the task rows, Swarm's rollout per app (failed: with its
    message; rolling; none when completed), and a plan equal to `make_swarm_plan`'s."""
    web, api, db = desired_app("web"), desired_app("api", replicas=2), desired_app("db")
    snap = SwarmSnapshot(
        (
            service(web, update_state="rollback_completed", update_message="task failed"),
            service(api, update_state="updating"),
            service(db, update_state="completed"),
        ),
        (),
    )
    seen = observation(snap, instance=I)
    assert {app: (r.failed, r.message) for app, r in seen.rollouts.items()} == {
        "web": (True, "swarm update rollback_completed: task failed"),
        "api": (False, "swarm update updating"),
    }
    state = desired(web, desired_app("api", replicas=3), db)
    direct = make_swarm_plan(state, snap.services, seen.state, instance=I)
    assert seen.plan(state, PlanOptions()) == direct
    assert [(c.app, c.action) for c in direct.changes] == [("api", "scale"), ("web", "heal")]


def test_a_dnsrr_service_is_routed_to_its_tasks_own_addresses() -> None:
    """No virtual IP (``endpointMode: dnsrr``): each task row carries the task's address on
    the instance's network (not the routing mesh's), so routes reach the tasks; a task Swarm
    moved shows its new address."""
    from controller.runtime.swarm import task_info

    web = desired_app("web", replicas=2)
    rows = [
        {
            "ID": f"t{slot}",
            "ServiceID": "id-test-web",
            "Slot": slot,
            "NodeID": f"node{slot}",
            "DesiredState": "running",
            "Status": {"State": "running", "Timestamp": "2026-01-01T00:00:00Z"},
            "NetworksAttachments": [
                {"Network": {"Spec": {"Name": "ingress"}}, "Addresses": [f"10.0.0.{slot}/24"]},
                {"Network": {"Spec": {"Name": "trueup-test"}}, "Addresses": [addr]},
            ],
        }
        for slot, addr in ((1, "10.0.9.3/24"), (2, "10.0.9.4/24"))
    ]
    snapshot = SwarmSnapshot((service(web),), tuple(task_info(r) for r in rows))
    assert sorted(r.ip_address or "" for r in task_rows(snapshot)) == ["10.0.9.3", "10.0.9.4"]
    observed = observation(snapshot, instance=I).state
    assert [r.ready for r in observed.apps["web"].replicas] == [True, True]
