"""`allow_volumes`: which existing volumes a ``volumeName`` may mount although this instance
did not make them. Pure: pattern matching, the policy stage's grant, the container spec's
``adopt`` flag, the desired cache's key and record, the CLI flag and the config key."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from controller.cli.groups import PolicyOptions
from controller.cli.main import main
from controller.desired import cache as desired_cache
from controller.desired.policy import Policy, adopted_volumes, volume_allowed
from controller.desired.resolve import DesiredApp, DesiredState, container_spec, resolve_app
from controller.desired.secrets import SecretStore
from controller.settings import load_settings
from tests.builders import app
from tests.cli.test_options import parse

SHOP = [{"name": "data", "mountPath": "/data", "volumeName": "shop_data"}]


def test_patterns_match_whole_names_exactly_or_by_glob() -> None:
    assert volume_allowed("shop_data", ["shop_*"])
    assert volume_allowed("shop_data", ["other", "shop_data"])
    assert volume_allowed("shop_db", ["shop_d?"])
    assert not volume_allowed("shop_data", ["shop"])  # a whole name, not a prefix
    assert not volume_allowed("myshop_data", ["shop_*"])
    assert not volume_allowed("SHOP_data", ["shop_*"])  # case-sensitive, as engine names
    assert not volume_allowed("shop_data", [])


def test_the_policy_stage_grants_only_matching_volume_names() -> None:
    """Only a ``volumeName`` matched by ``allow_volumes`` is granted; a trueup volume
    (``name`` alone, scoped to the instance) never is."""
    spec = app(
        "db",
        volumes=[
            *SHOP,
            {"name": "cache", "mountPath": "/c", "volumeName": "blog_cache"},
            {"name": "own", "mountPath": "/o"},
        ],
    ).spec
    assert adopted_volumes(spec, Policy()) == frozenset()
    assert adopted_volumes(spec, Policy(allow_volumes=("shop_*",))) == {"shop_data"}
    assert adopted_volumes(spec, Policy(allow_volumes=("*",))) == {"shop_data", "blog_cache"}


def _resolved(policy: Policy) -> DesiredApp:
    return resolve_app(
        app("db", volumes=SHOP),
        file="a.yaml",
        secrets=SecretStore(),
        context_ids={},
        policy=policy,
    )


def test_the_container_spec_carries_the_grant_to_the_runtime() -> None:
    """Without the policy the mount may only be created or be this instance's (``adopt``
    false); with it the runtime may mount an existing foreign volume. The grant is no part of
    the spec: the hash, and so the running containers, stay the same when it changes."""
    denied, allowed = _resolved(Policy()), _resolved(Policy(allow_volumes=("shop_data",)))
    for want, adopt in ((denied, False), (allowed, True)):
        (mount,) = container_spec(want, replica=0, instance="p", revision="r").volumes
        assert (mount.name, mount.adopt) == ("shop_data", adopt)
    assert denied.spec_hash == allowed.spec_hash


def test_the_desired_cache_keys_and_keeps_the_grant(tmp_path: Path) -> None:
    """A changed allow_volumes is another cache key; a stored state restores its grant."""
    none, some = Policy(), Policy(allow_volumes=("shop_*",))
    assert desired_cache.cache_key(".", "t", none) != desired_cache.cache_key(".", "t", some)
    key = desired_cache.cache_key(".", "t", some)
    want = _resolved(some)
    desired_cache.store(tmp_path, key, DesiredState("r", apps={"db": want}))
    back = desired_cache.restore(
        tmp_path, key, revision="r", secrets=SecretStore(), context_id=lambda c: c
    )
    assert back is not None and back.apps["db"].adopt_volumes == {"shop_data"}


def test_flag_environment_and_config_reach_the_policy(tmp_path: Path) -> None:
    """``--allow-volume`` (repeatable) on the one-shot commands; ``allow_volumes`` in the
    config file and ``TRUEUP_ALLOW_VOLUMES`` (comma-separated) for `trueup run`."""
    params = parse(main.commands["apply"], ["--allow-volume", "shop_*", "--allow-volume", "x"])
    assert PolicyOptions.read(params).policy().allow_volumes == ("shop_*", "x")
    assert PolicyOptions.read(parse(main.commands["diff"], [])).policy().allow_volumes == ()
    config = tmp_path / "trueup.yaml"
    config.write_text("allow_volumes: ['shop_*']\n")
    assert load_settings(config, {}, env={}).policy().allow_volumes == ("shop_*",)
    env = {"TRUEUP_ALLOW_VOLUMES": "a_*, b_data"}
    assert load_settings(None, {}, env=env).policy().allow_volumes == ("a_*", "b_data")
    help_text = CliRunner().invoke(main, ["apply", "--help"]).output
    assert "--allow-volume" in help_text
