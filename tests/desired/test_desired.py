"""Desired state: spec hashes, content-addressed build tags, secrets and host-power policy."""

from __future__ import annotations

import pytest

from controller import labels as L
from controller.desired.policy import Policy
from controller.desired.resolve import container_spec, resolve, resolve_app
from controller.desired.secrets import SecretStore, parse_env_file
from controller.errors import PolicyError, SecretError
from controller.manifests.loader import load_files
from tests.builders import app, desired_app


def test_hash_ignores_replicas_and_routing_only_fields() -> None:
    """Scaling, dependsOn and update strategy never roll containers."""
    base = desired_app("web")
    for change in ({"replicas": 5}, {"update": {"strategy": "stop-first"}}, {"suspend": False}):
        assert desired_app("web", **change).spec_hash == base.spec_hash
    assert desired_app("web", env={"A": "1"}).spec_hash != base.spec_hash
    assert desired_app("web", image="busybox:1.37").spec_hash != base.spec_hash


def test_build_tag_is_content_addressed() -> None:
    """Same context tree and options: same tag; another tree or build arg: another tag."""
    manifest = app("site", image=None, build={"context": "svc", "args": {"V": "1"}})

    def tag(tree: str, m: object = manifest) -> str:
        return resolve_app(
            m,  # type: ignore[arg-type]
            file="a.yaml", secrets=SecretStore(), context_ids={"svc": tree}, policy=Policy(),
        ).image  # fmt: skip

    assert tag("a" * 40) == tag("a" * 40)
    assert tag("a" * 40) != tag("b" * 40)
    other_args = app("site", image=None, build={"context": "svc", "args": {"V": "2"}})
    assert tag("a" * 40) != tag("a" * 40, other_args)
    assert tag("a" * 40).startswith("trueup/site:aaaaaaaaaaaa-")


def test_labels_carry_ownership_and_spec() -> None:
    """Every container is labelled with instance, app, replica, hash, revision and spec."""
    want = desired_app("web", env={"A": "1"})
    spec = container_spec(want, replica=1, instance="prod", revision="abc")
    assert spec.labels[L.INSTANCE] == "prod"
    assert spec.labels[L.APP] == "web"
    assert spec.labels[L.REPLICA] == "1"
    assert spec.labels[L.SPEC_HASH] == want.spec_hash
    assert spec.labels[L.REVISION] == "abc"
    assert '"A":"1"' in spec.labels[L.SPEC]
    assert spec.name == f"prod-web-1-{want.spec_hash[:8]}"
    assert spec.aliases == ("web",)


def test_secret_value_in_env_but_not_in_labels() -> None:
    """The container gets the value; labels carry only a digest."""
    store = SecretStore({"db": {"password": "hunter2"}})
    want = desired_app("web", store, env={"P": {"secretRef": {"name": "db", "key": "password"}}})
    spec = container_spec(want, replica=0, instance="i", revision="r")
    assert spec.env["P"] == "hunter2"
    assert all("hunter2" not in v for v in spec.labels.values())


def test_missing_secret_fails_that_app_only() -> None:
    """A missing secret is an error for its app; the others resolve."""
    text = (
        b"apiVersion: trueup/v1\nkind: App\nmetadata: {name: a}\n"
        b"spec: {image: x, env: {P: {secretRef: {name: db, key: k}}}}\n---\n"
        b"apiVersion: trueup/v1\nkind: App\nmetadata: {name: b}\nspec: {image: x}\n"
    )
    state = resolve(
        load_files({"a.yaml": text}),
        revision="r", secrets=SecretStore(), context_ids={}, policy=Policy(),
    )  # fmt: skip
    assert sorted(state.apps) == ["b"]
    assert "secret 'db' not found" in state.errors["a"]
    with pytest.raises(SecretError):
        SecretStore({"db": {}}).get("db", "k")


@pytest.mark.parametrize(
    ("spec", "allowed", "message"),
    [
        ({"privileged": True}, Policy(allow_privileged=True), "privileged"),
        ({"networkMode": "host"}, Policy(allow_host_network=True), "host networking"),
        (
            {"capAdd": ["NET_ADMIN"]},
            Policy(allowed_capabilities=frozenset({"NET_ADMIN"})),
            "NET_ADMIN",
        ),
        (
            {"binds": [{"hostPath": "/srv/config/app", "mountPath": "/config"}]},
            Policy(allowed_bind_paths=("/srv/config",)),
            "/srv/config/app",
        ),
    ],
)
def test_host_powers_need_controller_policy(
    spec: dict[str, object], allowed: Policy, message: str
) -> None:
    """Manifest authors are not host admins: host powers are refused unless allowed."""
    manifest = app("web", **spec)
    with pytest.raises(PolicyError, match=message):
        resolve_app(manifest, file="a", secrets=SecretStore(), context_ids={}, policy=Policy())
    resolve_app(manifest, file="a", secrets=SecretStore(), context_ids={}, policy=allowed)


def test_bind_prefix_is_a_path_prefix_not_a_string_prefix() -> None:
    """Allowing /srv/config does not allow /srv/configs-evil."""
    manifest = app("web", binds=[{"hostPath": "/srv/configs-evil", "mountPath": "/c"}])
    policy = Policy(allowed_bind_paths=("/srv/config",))
    with pytest.raises(PolicyError):
        resolve_app(manifest, file="a", secrets=SecretStore(), context_ids={}, policy=policy)


def test_env_file_parsing() -> None:
    """Secrets files: KEY=VALUE, comments, export prefix, quotes."""
    text = "# comment\nexport A=1\nB = 'two words'\nC=\"x=y\"\n\nnot a pair\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "x=y"}


def test_container_spec_repr_hides_env_values() -> None:
    """A replica's spec (logged, or shown in a traceback) names its variables, never values."""
    store = SecretStore({"db": {"password": "hunter2"}})
    ref = {"DB_PASSWORD": {"secretRef": {"name": "db", "key": "password"}}, "MODE": "plain"}
    want = desired_app("web", store, env=ref)
    spec = container_spec(want, replica=0, instance="t", revision="r")
    assert spec.env["DB_PASSWORD"] == "hunter2"
    shown = repr(spec)
    assert "hunter2" not in shown
    assert "DB_PASSWORD" in shown and "MODE" in shown and "busybox:1.36" in shown
    assert "hunter2" not in str(spec) and "hunter2" not in f"{[spec]}"
