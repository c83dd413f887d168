"""Whatever a committer writes under a service, the normaliser answers with located problems,
never with an exception (which would cost the file a "cannot read" problem and hide the
real ones)."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.compose import keys
from controller.compose.project import load_project

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["80:80", "./x:/y:ro", "data:/d", "1m30s", "${V}", "$$", "CMD", "/abs"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(sorted(keys.SERVICE | keys.PORT | keys.VOLUME)), inner, max_size=4
        )
    ),
    max_leaves=12,
)
_SERVICE = st.dictionaries(
    st.sampled_from(sorted(keys.SERVICE | {"container_name", "sysctls"})), _VALUES, max_size=6
)
_TOP = st.fixed_dictionaries(
    {
        "services": st.dictionaries(
            st.sampled_from(["web", "db", "x_y"]), _SERVICE, min_size=1, max_size=3
        )
    },
    optional={
        "volumes": st.dictionaries(st.sampled_from(["data", "d"]), _VALUES, max_size=2),
        "networks": st.dictionaries(st.sampled_from(["back", "default"]), _VALUES, max_size=2),
        "secrets": st.dictionaries(st.sampled_from(["pw"]), _VALUES, max_size=1),
        "configs": st.dictionaries(st.sampled_from(["conf"]), _VALUES, max_size=1),
        "name": _SCALARS,
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TOP)
def test_any_structure_gives_located_problems_never_an_exception(data: dict[str, object]) -> None:
    """No input reaches the catch-all: every problem is a located, specific one."""
    text = yaml.safe_dump(data)
    result = load_project("apps/p/compose.yaml", text.encode(), dotenv=None, variables={"V": "1"})
    assert not [p for p in result.problems if "cannot read this compose file" in p.message]
