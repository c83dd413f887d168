"""The desired-state cache: a restored state plans and applies exactly like a resolved one, and
anything that changed outside the cache key (a secret, a build context) makes it a miss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.desired import cache as desired_cache
from controller.desired.policy import Policy
from controller.desired.resolve import DesiredState, container_spec, resolve_app
from controller.desired.secrets import SecretStore
from controller.manifests.models import App
from tests.builders import app

CONTEXT_ID = "c" * 40
SECRETS = SecretStore({"db": {"password": "hunter2"}})


def _state(secrets: SecretStore = SECRETS) -> DesiredState:
    web = app(
        "web",
        image=None,
        build={"context": "services/web", "args": {"V": "1"}},
        ports=[{"name": "http", "containerPort": 8080}],
        routes=[{"host": "web.localhost", "port": "http"}],
        healthCheck={"http": {"port": "http", "path": "/"}, "interval": "2s"},
        env={"MODE": "prod", "DB_PASSWORD": {"secretRef": {"name": "db", "key": "password"}}},
        volumes=[{"name": "web-data", "mountPath": "/data"}],
        restartPolicy="on-failure",
        stopGracePeriod="3s",
        dependsOn=["api"],
    )
    api = App.model_validate(
        {
            "apiVersion": "trueup/v1",
            "kind": "App",
            "metadata": {"name": "api", "labels": {"team": "core"}},
            "spec": {"image": "busybox:1.36", "replicas": 3, "update": {"strategy": "stop-first"}},
        }
    )
    state = DesiredState(revision="r1")
    for manifest in (web, api):
        state.apps[manifest.name] = resolve_app(
            manifest,
            file=f"apps/{manifest.name}.yaml",
            secrets=secrets,
            context_ids={"services/web": CONTEXT_ID},
            policy=Policy(),
        )
    return state


def _restore(
    tmp_path: Path, key: str = "k1", secrets: SecretStore = SECRETS, context: str = CONTEXT_ID
) -> DesiredState | None:
    return desired_cache.restore(
        tmp_path, key, revision="r2", secrets=secrets, context_id=lambda _: context
    )


def test_restored_state_equals_resolved(tmp_path: Path) -> None:
    """Every field planning and applying read comes back the same, secrets included."""
    state = _state()
    desired_cache.store(tmp_path, "k1", state)
    restored = _restore(tmp_path)
    assert restored is not None
    assert restored.revision == "r2"  # the revision is the pass's, never the cached one
    assert restored.apps.keys() == state.apps.keys()
    for name, want in state.apps.items():
        got = restored.apps[name]
        assert got == want  # every plain field (the manifest is compared next)
        assert got.manifest == want.manifest
        assert dict(got.secret_env) == dict(want.secret_env)
        for replica in range(want.replicas):
            assert container_spec(got, replica=replica, instance="i", revision="r2") == (
                container_spec(want, replica=replica, instance="i", revision="r2")
            )


def test_secret_values_never_written(tmp_path: Path) -> None:
    desired_cache.store(tmp_path, "k1", _state())
    written = (tmp_path / desired_cache.FILE_NAME).read_text()
    assert "hunter2" not in written
    assert "db/password" in written  # which secret, not its value


@pytest.mark.parametrize(
    ("key", "secrets", "context"),
    [
        ("k2", SECRETS, CONTEXT_ID),  # another tree, path or policy
        ("k1", SecretStore({"db": {"password": "changed"}}), CONTEXT_ID),
        ("k1", SecretStore(), CONTEXT_ID),  # the secret is gone: the full path reports it
        ("k1", SECRETS, "d" * 40),  # the build context changed outside --path
    ],
    ids=["key", "secret-changed", "secret-missing", "context-changed"],
)
def test_changes_outside_the_key_are_misses(
    tmp_path: Path, key: str, secrets: SecretStore, context: str
) -> None:
    desired_cache.store(tmp_path, "k1", _state())
    assert _restore(tmp_path, key, secrets, context) is None


def test_states_with_problems_are_not_stored(tmp_path: Path) -> None:
    """A restored state never hides a problem: only clean states are remembered."""
    for spoil in ({"errors": {"x": "secret missing"}}, {"invalid": {"y"}}, {"load_failed": True}):
        state = _state()
        for field, value in spoil.items():
            setattr(state, field, value)
        desired_cache.store(tmp_path, "k1", state)
        assert not (tmp_path / desired_cache.FILE_NAME).exists()


def test_unreadable_or_foreign_files_are_misses(tmp_path: Path) -> None:
    path = tmp_path / desired_cache.FILE_NAME
    for text in ("", "{not json", "[]", json.dumps({"format": 99, "key": "k1", "apps": []})):
        path.write_text(text)
        assert _restore(tmp_path) is None
    path.write_text(json.dumps({"format": desired_cache.FORMAT, "key": "k1", "apps": [{}]}))
    assert _restore(tmp_path) is None


def test_key_covers_path_tree_and_policy() -> None:
    base = desired_cache.cache_key("apps", "t" * 40, Policy())
    assert base == desired_cache.cache_key("apps", "t" * 40, Policy())
    assert base != desired_cache.cache_key("other", "t" * 40, Policy())
    assert base != desired_cache.cache_key("apps", "u" * 40, Policy())
    assert base != desired_cache.cache_key("apps", "t" * 40, Policy(allow_privileged=True))


def test_reuse_in_memory_follows_secrets_and_contexts() -> None:
    """The controller loop reuses its last state on an unchanged tree, at the new revision,
    and still notices a rotated secret or a changed build context."""
    state = _state()

    def again(secrets: SecretStore = SECRETS, context: str = CONTEXT_ID) -> DesiredState | None:
        return desired_cache.reuse(
            state, revision="r9", secrets=secrets, context_id=lambda _: context
        )

    same = again()
    assert same is not None and same.revision == "r9"
    assert same.apps == state.apps
    assert dict(same.apps["web"].secret_env) == {"DB_PASSWORD": "hunter2"}
    assert again(SecretStore({"db": {"password": "rotated"}})) is None
    assert again(SecretStore()) is None
    assert again(context="d" * 40) is None
