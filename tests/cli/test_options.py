"""The options declared once in `controller.cli.options`: their two forms and the typed reads."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from controller.cli.groups import (
    EngineOptions,
    PolicyOptions,
    RouterOptions,
    SourceOptions,
    flag,
    integer,
    optional_int,
    optional_path,
    optional_text,
    path,
    port_ranges,
    text,
    texts,
)
from controller.cli.main import main
from controller.cli.options import COMMON, INSTANCE, Option, options, reads


def parse(command: click.Command, args: list[str]) -> dict[str, object]:
    return dict(command.make_context(command.name or "x", args).params)


def test_typed_reads_return_click_values() -> None:
    """Each read returns the value click converted, typed."""
    params: dict[str, object] = {
        "s": "x", "n": None, "p": Path("/a"), "b": True, "i": 3, "t": ("a", "b"),
        "r": ((80, 80), (8000, 9000)),
    }  # fmt: skip
    assert text(params, "s") == "x" and optional_text(params, "n") is None
    assert path(params, "p") == Path("/a") and optional_path(params, "n") is None
    assert flag(params, "b") is True and flag(params, "missing", default=True) is True
    assert optional_int(params, "i") == 3 and optional_int(params, "n") is None
    assert integer(params, "i") == 3
    assert texts(params, "t") == ("a", "b")
    assert port_ranges(params, "r") == ((80, 80), (8000, 9000))


@pytest.mark.parametrize(
    ("read", "value"),
    [(text, 1), (path, "/a"), (flag, "yes"), (optional_int, True), (integer, None), (texts, ["a"]),
     (port_ranges, ("80",))],
)  # fmt: skip
def test_a_value_of_another_type_is_a_bug_not_a_guess(read: object, value: object) -> None:
    """A value click did not convert as declared raises TypeError naming the option."""
    with pytest.raises(TypeError, match="option k"):
        read({"k": value}, "k")  # type: ignore[operator]


def test_plain_form_has_the_default_and_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--instance` defaults to "default", reads TRUEUP_INSTANCE, and is checked."""

    @click.command()
    @INSTANCE
    def command(instance: str) -> None: ...

    monkeypatch.delenv("TRUEUP_INSTANCE", raising=False)
    assert parse(command, [])["instance"] == "default"
    monkeypatch.setenv("TRUEUP_INSTANCE", "from-env")
    assert parse(command, [])["instance"] == "from-env"
    with pytest.raises(click.BadParameter):
        parse(command, ["--instance", "Not_Valid"])


def test_settings_form_gives_none_unless_the_flag_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In `trueup run`'s form no option has a default or reads the environment (the settings
    do), a repeatable one not given is None, and the instance is still checked."""

    @click.command()
    @options(COMMON, settings=True)
    def command(**params: object) -> None: ...

    monkeypatch.setenv("TRUEUP_INSTANCE", "from-env")
    monkeypatch.setenv("TRUEUP_STATE_DIR", "/elsewhere")
    assert set(parse(command, []).values()) == {None}
    given = parse(command, ["--allow-bind", "/srv", "--allow-host-port", "x", "--swarm"])
    assert given["allowed_bind_paths"] == ("/srv",) and given["swarm"] is True
    assert given["allowed_host_ports"] == ("x",)  # the settings check it, as the config's
    with pytest.raises(click.BadParameter):
        parse(command, ["--instance", "Not_Valid"])


def test_options_keeps_the_order_of_its_groups_in_help() -> None:
    """`options(a, b)` lists a's options, then b's."""
    first = Option("--first", help="1")
    second = Option("--second", help="2")

    @click.command()
    @options((first,), (second,))
    def command(**params: object) -> None: ...

    assert [p.name for p in command.params] == ["first", "second"]


def test_with_help_changes_only_the_help() -> None:
    other = INSTANCE.with_help("another text")
    assert other.help == "another text" and INSTANCE.help != "another text"
    assert (other.decls, other.default, other.envvar) == (
        INSTANCE.decls,
        INSTANCE.default,
        INSTANCE.envvar,
    )


def test_reads_hands_the_command_one_typed_object() -> None:
    """`@reads(build)` calls the command with what ``build`` made of click's values."""
    seen: list[object] = []

    @click.command()
    @options((Option("--name", default="x", help="n"),))
    @reads(lambda params: text(params, "name").upper())
    def command(value: str) -> None:
        """Doc."""
        seen.append(value)

    command.main(["--name", "web"], standalone_mode=False)
    assert seen == ["WEB"] and command.help == "Doc."


def test_diff_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """`trueup diff` with no flag and no TRUEUP_* variable reads the README's defaults."""
    for name in ("INSTANCE", "STATE_DIR", "RUNTIME", "RUNTIME_URL", "REPO", "PATH", "ROUTER"):
        monkeypatch.delenv(f"TRUEUP_{name}", raising=False)
    params = parse(main.commands["diff"], [])
    assert EngineOptions.read(params) == EngineOptions(
        "default", Path(".trueup"), "auto", None, False, None
    )
    assert SourceOptions.read(params) == SourceOptions(".", ".", None, None, None)
    assert RouterOptions.read(params) == RouterOptions(
        "none", "http://127.0.0.1:2019", ":80", False
    )
    assert (
        PolicyOptions.read(params).policy()
        == PolicyOptions(None, False, False, (), (), ()).policy()
    )


def test_policy_flags_become_the_policy() -> None:
    """`--allow-*` flags of diff/apply reach the host-power policy, port ranges parsed."""
    args = ["--allow-privileged", "--allow-bind", "/srv", "--allow-cap", "NET_ADMIN",
            "--allow-host-port", "8080", "--allow-host-port", "8000-9000"]  # fmt: skip
    policy = PolicyOptions.read(parse(main.commands["apply"], args)).policy()
    assert policy.allow_privileged and not policy.allow_host_network
    assert policy.allowed_bind_paths == ("/srv",)
    assert policy.allowed_capabilities == frozenset({"NET_ADMIN"})
    assert policy.allowed_host_ports == ((8080, 8080), (8000, 9000))


def test_a_bad_host_port_is_a_usage_error_naming_the_option() -> None:
    with pytest.raises(click.BadParameter):
        parse(main.commands["diff"], ["--allow-host-port", "80-70"])
