"""Small builders for pure-core tests: apps, desired states and observed containers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.desired.policy import Policy
from controller.desired.resolve import DesiredApp, DesiredState, container_spec, resolve_app
from controller.desired.secrets import SecretStore
from controller.manifests.models import App
from controller.runtime.base import ContainerInfo, ContainerState, Health
from controller.targets.observed import ObservedState, observe

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def app(name: str, **spec: Any) -> App:
    spec.setdefault("image", "busybox:1.36")
    return App.model_validate(
        {"apiVersion": "trueup/v1", "kind": "App", "metadata": {"name": name}, "spec": spec}
    )


def desired_app(name: str, secrets: SecretStore | None = None, **spec: Any) -> DesiredApp:
    return resolve_app(
        app(name, **spec),
        file=f"apps/{name}.yaml",
        secrets=secrets or SecretStore(),
        context_ids={},
        policy=Policy(),
    )


def desired(*apps: DesiredApp, **kw: Any) -> DesiredState:
    return DesiredState(revision="r1", apps={a.name: a for a in apps}, **kw)


def container(
    want: DesiredApp,
    replica: int,
    *,
    state: ContainerState = "running",
    health: Health | None = None,
    exit_code: int | None = None,
    age: int = 0,
    instance: str = "test",
) -> ContainerInfo:
    """A container as the list call would report it for ``want``'s replica ``replica``."""
    spec = container_spec(want, replica=replica, instance=instance, revision="r0")
    return ContainerInfo(
        id=f"{spec.name}-{age}",
        name=spec.name,
        image=spec.image,
        labels=dict(spec.labels),
        state=state,
        health=health,
        created=T0 + timedelta(seconds=age),
        exit_code=exit_code,
    )


def observed(*containers: ContainerInfo) -> ObservedState:
    return observe(containers)
