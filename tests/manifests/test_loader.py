"""The loader accepts the examples and rejects each kind of bad manifest at the right place."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.manifests.loader import load_files
from controller.manifests.models import App

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GOOD = """\
apiVersion: trueup/v1
kind: App
metadata:
  name: {name}
spec:
  image: busybox:1.36
{extra}"""


def app(name: str = "web", extra: str = "") -> bytes:
    return GOOD.format(name=name, extra=extra).encode()


def only_problem(files: dict[str, bytes]) -> str:
    result = load_files(files)
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    return str(result.problems[0])


def test_examples_are_valid() -> None:
    """Every manifest shipped in examples/ loads without a problem."""
    files = {str(p.relative_to(EXAMPLES)): p.read_bytes() for p in EXAMPLES.glob("apps/*.yaml")}
    result = load_files(files)
    assert result.problems == []
    assert sorted(result.apps) == ["api", "web", "worker"]
    assert result.apps["web"].app.spec.build is not None
    assert result.apps["worker"].app.spec.ports == []


def test_yaml_syntax_error_names_file_and_line() -> None:
    """A broken flow mapping is reported at the line where the parser gave up."""
    text = b"apiVersion: trueup/v1\nkind: App\nmetadata: {name: web\nspec: {image: x}\n"
    assert only_problem({"apps/web.yaml": text}).startswith("apps/web.yaml:4:5: YAML syntax error")


def test_unknown_field_points_at_key_with_hint() -> None:
    """A misspelt field is refused at its own line, with the field it probably meant."""
    msg = only_problem({"a.yaml": app(extra="  replcas: 2\n")})
    assert msg == "a.yaml:7:3: spec.replcas: unknown field; did you mean 'replicas'?"


def test_unknown_nested_field_hint() -> None:
    """Hints work inside nested models and lists too."""
    extra = "  ports:\n    - {name: http, containerPrt: 80}\n"
    msg = only_problem({"a.yaml": app(extra=extra)})
    assert msg.startswith("a.yaml:8:20: spec.ports[0].containerPrt: unknown field")
    assert "did you mean 'containerPort'" in msg


@pytest.mark.parametrize("bad", ["Web", "-web", "web-", "we_b", "a" * 64, ""])
def test_bad_name_is_refused(bad: str) -> None:
    """Names must be DNS labels: they become container names and DNS aliases."""
    msg = only_problem({"a.yaml": app(name=f'"{bad}"')})
    assert msg.startswith("a.yaml:4:9: metadata.name:")


def test_negative_replicas() -> None:
    """Replica counts below zero are refused at the value."""
    msg = only_problem({"a.yaml": app(extra="  replicas: -1\n")})
    assert msg == "a.yaml:7:13: spec.replicas: must be greater than or equal to 0"


def test_image_and_build_both_set() -> None:
    """Exactly one of image / build."""
    msg = only_problem({"a.yaml": app(extra="  build: {context: svc}\n")})
    assert msg == "a.yaml:7:10: spec.build: set either image or build, not both"


def test_neither_image_nor_build() -> None:
    """An app with nothing to run is refused."""
    text = b"apiVersion: trueup/v1\nkind: App\nmetadata: {name: x}\nspec:\n  replicas: 1\n"
    assert "set one of image or build" in only_problem({"a.yaml": text})


@pytest.mark.parametrize("context", ["../elsewhere", "svc/../../up", "/etc"])
def test_build_context_cannot_leave_the_repo(context: str) -> None:
    """A context outside the repository would let a manifest read the host's files."""
    text = (
        f"apiVersion: trueup/v1\nkind: App\nmetadata: {{name: x}}\n"
        f"spec:\n  build: {{context: '{context}'}}\n"
    ).encode()
    msg = only_problem({"a.yaml": text})
    assert msg.startswith("a.yaml:5:20: spec.build.context:")


def test_context_inside_repo_is_normalised() -> None:
    """`svc/../svc2` stays inside and is accepted, normalised."""
    text = b"apiVersion: trueup/v1\nkind: App\nmetadata: {name: x}\n"
    text += b"spec:\n  build: {context: svc/../svc2/}\n"
    result = load_files({"a.yaml": text})
    assert result.problems == []
    build = result.apps["x"].app.spec.build
    assert build is not None and build.context == "svc2"


def test_route_must_name_a_declared_port() -> None:
    """A route to an undeclared port is refused at the route's port."""
    extra = (
        "  ports:\n    - {name: http, containerPort: 80}\n"
        "  routes:\n    - host: web.example.com\n      port: admin\n"
    )
    msg = only_problem({"a.yaml": app(extra=extra)})
    assert msg.startswith("a.yaml:11:13: spec.routes[0].port: route port 'admin' is not a declared")


def test_duplicate_names_reported_in_both_files() -> None:
    """Two manifests with the same name: an error in each, and neither is applied."""
    result = load_files({"a.yaml": app("web"), "b.yaml": app("web")})
    assert [str(p) for p in result.problems] == [
        "a.yaml:4:9: metadata.name: app 'web' is also declared at b.yaml:4",
        "b.yaml:4:9: metadata.name: app 'web' is also declared at a.yaml:4",
    ]
    assert result.apps == {}
    assert result.invalid_apps == {"web"}


def test_unknown_depends_on_with_hint() -> None:
    """dependsOn naming no app is refused at the list item, with a close match."""
    files = {"a.yaml": app("web", "  dependsOn: [dbb]\n"), "b.yaml": app("db")}
    msg = only_problem(files)
    assert msg == "a.yaml:7:15: spec.dependsOn[0]: no app named 'dbb'; did you mean 'db'?"


def test_dependency_cycle_is_named() -> None:
    """A cycle is reported in every app on it, naming the whole cycle."""
    files = {
        "a.yaml": app("a", "  dependsOn: [b]\n"),
        "b.yaml": app("b", "  dependsOn: [c]\n"),
        "c.yaml": app("c", "  dependsOn: [a]\n"),
        "d.yaml": app("d", "  dependsOn: [a]\n"),
    }
    result = load_files(files)
    messages = [str(p) for p in result.problems]
    assert messages == [
        f"{f}.yaml:7:14: spec.dependsOn: dependency cycle a → b → c → a" for f in "abc"
    ]
    assert sorted(result.apps) == ["d"]


def test_a_dependency_chain_of_1500_apps_loads_and_its_cycle_is_named() -> None:
    """A chain longer than Python's recursion limit is checked for cycles like a short one:
    loaded when it has none, and, closed into a ring, reported in every app of it."""
    n = 1500

    def chain(ring: bool) -> dict[str, bytes]:
        docs = []
        for i in range(n):
            nxt = i + 1 if i + 1 < n else (0 if ring else None)
            extra = f"  dependsOn: [a{nxt}]\n" if nxt is not None else ""
            docs.append(app(f"a{i}", extra))
        return {"chain.yaml": b"---\n".join(docs)}

    result = load_files(chain(ring=False))
    assert result.problems == [] and len(result.apps) == n
    ring = load_files(chain(ring=True))
    assert len(ring.problems) == n and not ring.apps
    message = str(ring.problems[0])
    assert "spec.dependsOn: dependency cycle a0 → a1 → a2 → " in message
    assert message.endswith("a1498 → a1499 → a0")


def test_several_documents_per_file() -> None:
    """A file may hold several apps; a bad one does not hide the good ones."""
    text = app("one") + b"---\n" + app("two", "  replicas: many\n") + b"---\n" + app("three")
    result = load_files({"all.yaml": text})
    assert sorted(result.apps) == ["one", "three"]
    assert [str(p) for p in result.problems] == [
        "all.yaml:14:13: spec.replicas: must be a valid integer, "
        "unable to parse string as an integer"
    ]
    assert result.failed_files == {"all.yaml"}
    assert result.invalid_apps == {"two"}


def test_broken_file_does_not_hide_other_files() -> None:
    """A syntax error in one file leaves the apps of the other files loaded."""
    result = load_files({"a.yaml": b"kind: [", "b.yaml": app("b")})
    assert sorted(result.apps) == ["b"]
    assert result.failed_files == {"a.yaml"}


def test_duplicate_yaml_key_is_an_error() -> None:
    """PyYAML keeps the last of two equal keys silently; trueup refuses the ambiguity."""
    msg = only_problem({"a.yaml": app(extra="  replicas: 1\n  replicas: 3\n")})
    assert msg == "a.yaml:8:3: spec.replicas: key appears twice in this mapping"


def test_wrong_api_version_and_kind() -> None:
    """Other apiVersions and kinds are refused, naming what is supported."""
    assert "expected 'trueup/v1'" in only_problem({"a.yaml": b"apiVersion: v2\nkind: App\n"})
    msg = only_problem({"a.yaml": b"apiVersion: trueup/v1\nkind: Pod\n"})
    assert msg == "a.yaml:2:7: kind: expected 'App', got 'Pod'"


def test_alias_bomb_is_refused() -> None:
    """Exponential alias expansion is stopped instead of eating memory."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    msg = only_problem({"bomb.yaml": "\n".join(lines).encode()})
    assert "expands to more than" in msg


def test_units_are_parsed() -> None:
    """Durations and sizes become seconds and bytes."""
    extra = (
        "  stopGracePeriod: 500ms\n  resources: {memory: 256Mi, cpus: 0.5}\n"
        "  healthCheck: {tcp: {port: 80}, interval: 1m, timeout: 2s}\n"
    )
    result = load_files({"a.yaml": app(extra=extra)})
    assert result.problems == []
    spec = result.apps["web"].app.spec
    assert spec.stop_grace_period == 0.5
    assert spec.resources.memory == 256 * 1024 * 1024
    assert spec.health_check is not None and spec.health_check.interval == 60.0


def test_bad_duration_message() -> None:
    """A malformed duration says how to write one."""
    msg = only_problem({"a.yaml": app(extra="  stopGracePeriod: 5 minutes\n")})
    assert msg.startswith("a.yaml:7:20: spec.stopGracePeriod: '5 minutes' is not a duration")


def test_env_secret_ref_and_scalars() -> None:
    """Env values are strings (numbers accepted) or secretRefs; booleans must be quoted."""
    extra = "  env:\n    A: 1.5\n    B: {secretRef: {name: db, key: password}}\n"
    result = load_files({"a.yaml": app(extra=extra)})
    assert result.problems == []
    spec = result.apps["web"].app.spec
    assert spec.env["A"] == "1.5"
    assert spec.secret_refs()["B"].key == "password"
    msg = only_problem({"a.yaml": app(extra="  env:\n    DEBUG: true\n")})
    assert msg.startswith("a.yaml:8:12: spec.env.DEBUG: a true/false value is ambiguous")


def test_default_update_strategy() -> None:
    """start-first unless a host port or volume makes two replicas collide."""
    plain = App.model_validate(
        {
            "apiVersion": "trueup/v1",
            "kind": "App",
            "metadata": {"name": "a"},
            "spec": {"image": "x"},
        }
    )
    assert plain.spec.effective_strategy() == "start-first"
    hosted = App.model_validate(
        {
            "apiVersion": "trueup/v1",
            "kind": "App",
            "metadata": {"name": "a"},
            "spec": {"image": "x", "ports": [{"name": "p", "containerPort": 80, "hostPort": 8080}]},
        }
    )
    assert hosted.spec.effective_strategy() == "stop-first"
