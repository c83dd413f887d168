"""Interpolation in compose files: every form, ``$$``, defaults that nest, an unset variable
as a located error, the host's variables over the committed ``.env``, never the process
environment, keys left alone, expansion bounded; and the value syntaxes (Go durations,
memory sizes, port specs, command strings)."""

from __future__ import annotations

import pytest

from controller.compose.interpolate import MAX_CHARS, Interpolator, parse_dotenv
from controller.compose.project import load_project
from controller.compose.values import go_duration, ram_bytes, shell_words, short_ports

FILE = "apps/shop/compose.yaml"


def _env(value: str, *, dotenv: str | None = None, variables: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    text = f"services:\n  web:\n    image: nginx\n    environment:\n      X: '{value}'\n"
    return load_project(
        FILE,
        text.encode(),
        dotenv=dotenv.encode() if dotenv is not None else None,
        variables=variables or {},
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${SET}", "v"),
        ("$SET", "v"),
        ("a${SET}b", "avb"),
        ("$SET.x", "v.x"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${UNSET-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${SET:+x}", "x"),
        ("${EMPTY:+x}", ""),
        ("${EMPTY+x}", "x"),
        ("${UNSET+x}", ""),
        ("${SET:?needed}", "v"),
        ("${EMPTY?needed}", ""),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("$$$SET", "$v"),
        ("${UNSET:-${SET}-n}", "v-n"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("5 $ or $1", "5 $ or $1"),
    ],
)
def test_every_form_interpolates_as_compose_does(template: str, expected: str) -> None:
    """Each form of the issue gives Compose's value."""
    result = _env(template, variables={"SET": "v", "EMPTY": ""})
    assert result.problems == []
    assert result.apps[0].app.spec.env["X"] == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "${NOPE}",
            "services.web.environment.X: variable NOPE is not set (in neither the committed "
            ".env nor the host's variables file); give it a value or a default: "
            "${NOPE:-default}",
        ),
        (
            "${NOPE:?set NOPE to the API key}",
            "services.web.environment.X: ${NOPE}: set NOPE to the API key",
        ),
        ("${EMPTY:?}", "services.web.environment.X: ${EMPTY}: variable EMPTY is required"),
        ("${NOPE", "services.web.environment.X: unterminated '${' in '${NOPE'"),
        (
            "${NOPE!}",
            "services.web.environment.X: invalid interpolation in '${NOPE!}': after ${NOPE "
            "comes '}', ':-', '-', ':?', '?', ':+' or '+'",
        ),
    ],
)
def test_unset_and_malformed_are_located_errors(template: str, message: str) -> None:
    """An unset variable is an error at its value, not an empty string."""
    result = _env(template, variables={"EMPTY": ""})
    assert [(p.line, p.column, p.message) for p in result.problems] == [(5, 10, message)]
    assert result.apps == []


def test_host_variables_win_over_the_committed_env_and_the_process_environment_is_never_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``.env`` gives defaults, the host's variables file overrides them, and a variable of
    the controller's own environment is not a value."""
    monkeypatch.setenv("ONLY_IN_PROCESS", "leak")
    dotenv = "A=from-dotenv\nB=from-dotenv\n"
    result = _env("${A}/${B}", dotenv=dotenv, variables={"B": "from-host"})
    assert result.apps[0].app.spec.env["X"] == "from-dotenv/from-host"
    leaked = _env("${ONLY_IN_PROCESS}")
    assert "variable ONLY_IN_PROCESS is not set" in leaked.problems[0].message


def test_keys_are_not_interpolated_and_every_value_is() -> None:
    """A ``$`` in a key stays; values anywhere (image, ports, name:) are interpolated."""
    text = (
        "name: ${P}\nservices:\n  web:\n    image: nginx:${TAG}\n    ports: ['${PORT}:80']\n"
        "  api:\n    image: nginx\n    depends_on: {'${P}': {condition: service_started}}\n"
    )
    result = load_project(
        "compose.yaml",
        text.encode(),
        dotenv=None,
        variables={"P": "shop", "TAG": "1", "PORT": "8080"},
    )
    assert [p.message for p in result.problems] == [
        "services.api.depends_on.${P}: no service named '${P}' in this file"
    ]
    (app,) = result.apps
    assert (app.app.name, app.app.spec.image) == ("shop-web", "nginx:1")
    assert app.app.spec.ports[0].host_port == 8080


def test_interpolated_numbers_and_booleans_are_cast_as_compose_casts_them() -> None:
    """``replicas: ${N}`` is the integer, ``init: ${INIT:-false}`` the boolean."""
    text = (
        "services:\n  web:\n    image: nginx\n    deploy: {replicas: '${N}'}\n"
        "    init: ${INIT:-yes}\n    privileged: 'off'\n"
        "    healthcheck: {test: [CMD, 'true'], retries: '${N}'}\n"
    )
    (app,) = load_project(FILE, text.encode(), dotenv=None, variables={"N": "3"}).apps
    spec = app.app.spec
    assert (spec.replicas, spec.init, spec.privileged) == (3, True, False)
    assert spec.health_check is not None and spec.health_check.retries == 3


def test_healthcheck_dollars_reach_the_shell() -> None:
    """``$$`` in a CMD-SHELL test is one ``$`` for the container's shell."""
    text = (
        "services:\n  db:\n    image: postgres\n    healthcheck:\n"
        "      test: ['CMD-SHELL', 'pg_isready -U $$POSTGRES_USER']\n"
    )
    (app,) = load_project(FILE, text.encode(), dotenv=None, variables={}).apps
    assert app.app.spec.health_check is not None
    assert app.app.spec.health_check.exec == ["/bin/sh", "-c", "pg_isready -U $POSTGRES_USER"]


def test_expansion_is_bounded() -> None:
    """A long variable used many times is refused, not expanded into gigabytes."""
    interpolator = Interpolator({"BIG": "x" * (1024 * 1024)})
    with pytest.raises(ValueError, match="MiB of text"):
        for _ in range(MAX_CHARS // (1024 * 1024) + 1):
            interpolator.substitute("${BIG}")
    text = "services:\n  web:\n    image: nginx\n    command: [" + ", ".join(["'$BIG'"] * 8) + "]\n"
    result = load_project(FILE, text.encode(), dotenv=None, variables={"BIG": "x" * 1024 * 1024})
    assert any("MiB of text" in p.message for p in result.problems)


def test_dotenv_format_and_its_located_problems() -> None:
    """Comments, ``export``, quotes and escapes; a bad line is a problem of the .env file."""
    values, bad = parse_dotenv(
        "# comment\nexport A=1\nB='single $x'\nC=\"line\\nnext\"\nD=plain # comment\n"
        'E=\nnot a line\nF="open\n'
    )
    assert values == {"A": "1", "B": "single $x", "C": "line\nnext", "D": "plain", "E": ""}
    assert bad == [(7, "not a KEY=VALUE line"), (8, "F: unterminated double quote")]
    result = _env("${A}", dotenv="A=1\n???\n")
    assert [str(p) for p in result.problems] == ["apps/shop/.env:2:1: not a KEY=VALUE line"]


def test_dotenv_values_interpolate_from_lines_above_and_the_host() -> None:
    """As Compose: unquoted and double-quoted values expand, single-quoted ones do not; the
    host's variables win; an unset variable is a bad line of the .env."""
    values, bad = parse_dotenv(
        "A=1\nB=${A}2\nC=\"q$A\"\nD='lit$A'\nE=$HOSTV\nF=${NOPE}\n", {"HOSTV": "h"}
    )
    assert values == {"A": "1", "B": "12", "C": "q1", "D": "lit$A", "E": "h"}
    assert [n for n, _ in bad] == [6]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            'gunicorn -b 0.0.0.0:8000 "app:create()"',
            ["gunicorn", "-b", "0.0.0.0:8000", "app:create()"],
        ),
        ("sh -c 'echo \"hi there\"'", ["sh", "-c", 'echo "hi there"']),
        ('echo "a\\"b" c\\ d', ["echo", 'a"b', "c d"]),
        ("echo '' \"\"", ["echo", "", ""]),
        ("  spaced\tout\n", ["spaced", "out"]),
        ("echo '$HOME'", ["echo", "$HOME"]),
    ],
)
def test_command_strings_split_like_go_shellwords(line: str, words: list[str]) -> None:
    """The string forms of command and entrypoint split as Compose splits them."""
    assert shell_words(line) == words


@pytest.mark.parametrize("line", ["echo a; rm -rf /", "a && b", "a | b", "a > f", "'open", "x\\"])
def test_command_strings_compose_would_cut_short_are_refused(line: str) -> None:
    """Where Compose silently drops everything after an unquoted operator, trueup refuses."""
    with pytest.raises(ValueError):
        shell_words(line)


def test_durations_sizes_and_ports() -> None:
    """Go durations, Docker memory sizes and short port specs; bad ones raise clearly."""
    assert [go_duration(v) for v in ("1m30s", "500ms", "1.5h", "2us", "0")] == [
        90.0,
        0.5,
        5400.0,
        2e-6,
        0.0,
    ]
    for bad in ("5 seconds", "1d", "-1s", "", True, 3):
        with pytest.raises(ValueError):
            go_duration(bad)
    assert [ram_bytes(v) for v in ("1.5G", "512m", "1gb", "64k", 1024)] == [
        1610612736,
        536870912,
        1073741824,
        65536,
        1024,
    ]
    with pytest.raises(ValueError):
        ram_bytes("lots")
    assert [
        (p.container, p.host_port, p.host_ip, p.protocol) for p in short_ports("[::1]:53:53/udp")
    ] == [(53, 53, "::1", "udp")]
    for bad in ("80:80:80:80", "0:80", "8000-8001:80", "a:b", "80/sctp", "1-300"):
        with pytest.raises(ValueError):
            short_ports(bad)
