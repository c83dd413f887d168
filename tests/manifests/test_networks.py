"""``spec.networks`` is validated at the offending entry, for that file only."""

from __future__ import annotations

import pytest

from controller.manifests.loader import load_files

APP = """\
apiVersion: trueup/v1
kind: App
metadata:
  name: {name}
spec:
  image: busybox:1.36
{extra}"""


def problems(extra: str) -> list[str]:
    files = {
        "apps/web.yaml": APP.format(name="web", extra=extra).encode(),
        "apps/api.yaml": APP.format(name="api", extra="").encode(),
    }
    result = load_files(files)
    assert "api" in result.apps  # the other app loads
    return [str(p) for p in result.problems]


def test_networks_with_aliases_load() -> None:
    """Networks and aliases that are DNS labels load as written."""
    extra = "  networks:\n    - {name: shop, aliases: [db, shop-db]}\n    - {name: ops}\n"
    result = load_files({"apps/web.yaml": APP.format(name="web", extra=extra).encode()})
    assert result.problems == []
    networks = result.apps["web"].app.spec.networks
    assert networks is not None
    assert [(n.name, n.aliases) for n in networks] == [("shop", ["db", "shop-db"]), ("ops", None)]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "  networks:\n    - {name: Shop_1}\n",
            "apps/web.yaml:8:14: spec.networks[0].name: 'Shop_1' is not a valid name",
        ),
        (
            "  networks:\n    - {name: shop, aliases: [db, -db]}\n",
            "apps/web.yaml:8:34: spec.networks[0].aliases[1]: '-db' is not a valid name",
        ),
        (
            "  networks:\n    - {name: shop}\n    - {name: ops}\n    - {name: shop}\n",
            "apps/web.yaml:10:14: spec.networks[2].name: network 'shop' is listed twice",
        ),
        (
            "  networks:\n    - {name: shop, aliases: [db, db]}\n",
            "apps/web.yaml:8:29: spec.networks[0].aliases: an alias is listed twice",
        ),
        (
            "  networkMode: host\n  networks: [{name: shop}]\n",
            "apps/web.yaml:8:13: spec.networks: networks cannot be used with networkMode host",
        ),
        ("  networks: []\n", "apps/web.yaml:7:13: spec.networks: "),
        (
            "  networks: [{name: shop, alias: [db]}]\n",
            "apps/web.yaml:7:27: spec.networks[0].alias: unknown field; did you mean 'aliases'?",
        ),
    ],
)
def test_bad_networks_are_located_errors(extra: str, expected: str) -> None:
    """Each mistake in spec.networks is one located error in that file; other apps load."""
    (problem,) = problems(extra)
    assert problem.startswith(expected), problem
