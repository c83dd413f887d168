"""Property tests: whatever bytes or values arrive, the loader reports problems and never raises."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.manifests.loader import load_files
from controller.manifests.models import App

FIELDS = [
    "image", "build", "command", "entrypoint", "workingDir", "user", "env", "replicas", "ports",
    "routes", "healthCheck", "resources", "volumes", "restartPolicy", "init", "stopSignal",
    "stopGracePeriod", "dependsOn", "update", "suspend", "privileged", "networkMode", "binds",
    "capAdd", "nonsense",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["5s", "500ms", "1m", "256Mi", "-1", "http", "../x", "/abs", "SIGTERM"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=20,
)


def check(files: dict[str, bytes]) -> None:
    result = load_files(files)
    for problem in result.problems:
        assert problem.line >= 1 and problem.column >= 1
        assert problem.file in files
        assert problem.message
    assert set(result.apps).isdisjoint(result.invalid_apps)
    for loaded in result.apps.values():
        assert isinstance(loaded.app, App)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    """Arbitrary bytes, including invalid UTF-8 and control characters, give problems only."""
    check({"x.yaml": data})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n\t ,?%@`0123")), max_size=200))
def test_random_yaml_punctuation_never_raises(text: str) -> None:
    """Text dense in YAML syntax characters (anchors, tags, flow collections) never escapes."""
    check({"x.yaml": text.encode()})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=8), values)
def test_random_spec_values_never_raise(spec: dict[str, Any], metadata: Any) -> None:
    """Well-formed YAML carrying random field values yields apps or located problems."""
    doc = {"apiVersion": "trueup/v1", "kind": "App", "metadata": metadata, "spec": spec}
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return
    check({"apps/x.yaml": text.encode()})
    check({"apps/x.yaml": text.encode(), "apps/y.yaml": text.encode()})


TAGS = [
    "", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!str ", "!!null ",
    "!!set ", "!!omap ", "!!pairs ", "!!map ", "!!seq ", "!!merge ", "!!value ", "!local ",
    "!!python/name:os.system ", "!!python/object/apply:os.system ", "!<tag:yaml.org,2002:int> ",
]  # fmt: skip
odd_scalars = st.one_of(
    st.sampled_from(
        [
            "x", "''", "0b", "0x", "0o", "1_000", "1:2:3", "1:", "-.inf", ".nan", "1e99999",
            "2001-02-30", "2001-13-01", "2001-01-01 25:61:61", "2001-12-14t21:59:43.10+25:00",
            "~", "=", "<<", "yes", "0x" + "f" * 5000, "1" * 4301, "-" + "9" * 4400, "%%%",
            "[a, b]", "{a: 1}", "{<<: 1}", "{<<: [1]}", "&a [*a]", "&b {<<: *b}", "[{]}",
        ]
    ),
    st.integers().map(str),
    st.text(alphabet=st.sampled_from(list("0123456789.:-+eExob_ tT")), max_size=30),
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(FIELDS), st.sampled_from(TAGS), odd_scalars),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(TAGS),
    odd_scalars,
)
def test_tags_and_odd_scalars_never_raise(
    fields: list[tuple[str, str, str]], name_tag: str, name: str
) -> None:
    """Explicit YAML tags (python/*, set, omap, binary, timestamp...), huge integers and odd
    scalars anywhere in a manifest, even on keys, give located problems, never an exception;
    a good file beside it still loads."""
    lines = ["apiVersion: trueup/v1", "kind: App", f"metadata: {{name: {name_tag}{name}}}"]
    lines += ["spec:", "  image: busybox:1.36"]
    lines += [f"  {field}: {tag}{value}" for field, tag, value in fields]
    lines += [f"  {fields[0][1]}{fields[0][2]}: 1"]  # the same as a key
    good = b"apiVersion: trueup/v1\nkind: App\nmetadata: {name: good}\nspec: {image: x}\n"
    check({"apps/x.yaml": "\n".join(lines).encode(), "apps/good.yaml": good})
    assert "good" in load_files({"apps/x.yaml": "\n".join(lines).encode(), "z.yaml": good}).apps
