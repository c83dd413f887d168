"""Discovery: compose files are projects, the YAML files of a project's folder are its data,
a file a ``files`` source names is never a manifest, and the repository checks run across
manifests and compose projects alike."""

from __future__ import annotations

from pathlib import Path

from controller.manifests.discovery import ComposeInputs
from controller.manifests.loader import load_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SHOP = b"""\
name: shop
services:
  web:
    image: busybox:1.36
    depends_on: [db]
    configs: [{source: prom, target: /etc/prometheus/prometheus.yml}]
  db:
    image: busybox:1.36
configs:
  prom: {file: ./prometheus.yml}
"""
NOT_A_MANIFEST = b"global: {scrape_interval: 15s}\nscrape_configs: []\n"


def manifest(name: str, extra: str = "") -> bytes:
    text = f"apiVersion: trueup/v1\nkind: App\nmetadata: {{name: {name}}}\nspec:\n"
    return (text + "  image: busybox:1.36\n" + extra).encode()


def test_the_yaml_of_a_project_folder_is_data_and_listed_as_skipped() -> None:
    """A prometheus.yml beside a compose file, or in a folder below it, is never read as a
    manifest (no "apiVersion" problem), and the loader says why it skipped it; manifests
    elsewhere load as before."""
    files = {
        "apps/api.yaml": manifest("api"),
        "stacks/shop/compose.yaml": SHOP,
        "stacks/shop/prometheus.yml": NOT_A_MANIFEST,
        "stacks/shop/grafana/datasources/prom.yaml": NOT_A_MANIFEST,
    }
    result = load_files(files)
    assert [str(p) for p in result.problems] == []
    assert sorted(result.apps) == ["api", "shop-db", "shop-web"]
    assert result.skipped == {
        "stacks/shop/grafana/datasources/prom.yaml": "data of compose project shop",
        "stacks/shop/prometheus.yml": "data of compose project shop",
    }
    assert result.apps["shop-web"].file == "stacks/shop/compose.yaml"
    assert result.apps["shop-web"].line == 3


def test_a_files_source_is_never_read_as_a_manifest() -> None:
    """A manifest mounting config/app.yaml (or a folder of YAML files) does not make those
    files manifests, so they never fail the pass."""
    extra = (
        "  files:\n"
        "    - {path: /etc/app.yaml, source: config/app.yaml}\n"
        "    - {path: /etc/rules, source: config/rules}\n"
    )
    files = {
        "apps/web.yaml": manifest("web", extra),
        "config/app.yaml": NOT_A_MANIFEST,
        "config/rules/a.yml": NOT_A_MANIFEST,
        "config/other.yaml": NOT_A_MANIFEST,
    }
    result = load_files(files)
    assert [p.file for p in result.problems] == ["config/other.yaml"]
    assert result.skipped == {
        "config/app.yaml": "a files source of an app",
        "config/rules/a.yml": "a files source of an app",
    }
    assert sorted(result.apps) == ["web"]


def test_a_subfolder_with_its_own_compose_file_is_its_own_project() -> None:
    """The nearest compose file owns a data file; a second compose file in one folder is
    skipped in favour of the preferred name, as docker compose does."""
    files = {
        "shop/compose.yaml": SHOP,
        "shop/prometheus.yml": NOT_A_MANIFEST,
        "shop/docker-compose.yml": b"services: {x: {image: busybox:1.36}}\n",
        "shop/billing/compose.yml": b"services:\n  api:\n    image: busybox:1.36\n",
        "shop/billing/rules.yml": NOT_A_MANIFEST,
    }
    result = load_files(files)
    assert [str(p) for p in result.problems] == []
    assert sorted(result.apps) == ["billing-api", "shop-db", "shop-web"]
    assert result.skipped == {
        "shop/billing/rules.yml": "data of compose project billing",
        "shop/docker-compose.yml": "shop/compose.yaml is the compose file of this folder",
        "shop/prometheus.yml": "data of compose project shop",
    }


def test_an_app_name_declared_by_a_manifest_and_a_service_is_refused_in_both() -> None:
    """``shop-web`` from a manifest and from the compose project: both are located problems
    (the compose one at its service), the rest applies."""
    files = {"apps/shop-web.yaml": manifest("shop-web"), "shop/compose.yaml": SHOP}
    result = load_files(files)
    shown = sorted(str(p) for p in result.problems)
    assert shown == [
        "apps/shop-web.yaml:3:18: metadata.name: app 'shop-web' is also declared at "
        "shop/compose.yaml:4",
        "shop/compose.yaml:4:5: metadata.name: app 'shop-web' is also declared at "
        "apps/shop-web.yaml:3",
    ]
    assert sorted(result.apps) == ["shop-db"]
    assert {"shop-web"} <= result.invalid_apps
    assert result.failed_files == {"apps/shop-web.yaml", "shop/compose.yaml"}


def test_routes_and_dependencies_cross_between_manifests_and_projects() -> None:
    """A manifest may depend on a compose app; a route claimed by a manifest and by a
    service's x-trueup is refused in both files."""
    compose = SHOP.replace(
        b"  db:\n",
        b"    x-trueup:\n      routes: [{host: shop.localhost, port: 80}]\n    expose: [80]\n"
        b"  db:\n",
    )
    extra = (
        "  dependsOn: [shop-db]\n  ports: [{name: http, containerPort: 80}]\n"
        "  routes: [{host: shop.localhost, port: http}]\n"
    )
    files = {"apps/front.yaml": manifest("front", extra), "shop/compose.yaml": compose}
    result = load_files(files)
    assert sorted(p.file for p in result.problems) == ["apps/front.yaml", "shop/compose.yaml"]
    assert all("route shop.localhost/ is also claimed" in p.message for p in result.problems)
    (compose_problem,) = [p for p in result.problems if p.file == "shop/compose.yaml"]
    assert compose_problem.line == 8  # the x-trueup route
    assert sorted(result.apps) == ["shop-db"]


def test_host_variables_are_found_by_project_name() -> None:
    """``<vars-dir>/<project>.env``: the project's ``name:``, not its folder, names the file;
    an unreadable file fails that project's apps only (left running as they are)."""
    compose = b"name: store\nservices:\n  web:\n    image: busybox:${TAG}\n"
    files = {"shop/compose.yaml": compose, "apps/api.yaml": manifest("api")}
    inputs = ComposeInputs(variables={"store": {"TAG": "1.36"}, "shop": {"TAG": "wrong"}})
    result = load_files(files, inputs)
    assert [str(p) for p in result.problems] == []
    assert result.apps["store-web"].app.spec.image == "busybox:1.36"
    broken = load_files(files, ComposeInputs(errors={"store": "line 2: not KEY=VALUE"}))
    assert "shop/compose.yaml:1:1: project store: host variables file: line 2: not KEY=VALUE" in [
        str(p) for p in broken.problems
    ]
    assert sorted(broken.apps) == ["api"] and "store-web" in broken.invalid_apps


def test_the_examples_load_with_the_compose_project() -> None:
    """examples/ (manifests and the compose project) loads clean, the shop's data skipped."""
    files = {
        p.relative_to(EXAMPLES).as_posix(): p.read_bytes()
        for p in EXAMPLES.rglob("*")
        if p.is_file() and (p.suffix in (".yaml", ".yml") or p.name == ".env")
    }
    result = load_files(files)
    assert [str(p) for p in result.problems] == []
    assert sorted(result.apps) == ["api", "shop-db", "shop-web", "web", "worker"]
    web = result.apps["shop-web"].app.spec
    assert web.build is not None and web.build.context == "compose/shop/web"
    assert web.build.args["SHOP_TITLE"] == "trueup shop"
    assert web.depends_on == ["shop-db"]


def test_a_manifest_inside_a_project_folder_is_data_and_says_so() -> None:
    """A trueup manifest under a compose project's folder is not deployed; the skip reason
    says it looks like one, so the operator moves it."""
    files = {"shop/compose.yaml": SHOP, "shop/extra/api.yaml": manifest("api")}
    result = load_files(files)
    assert "api" not in result.apps
    assert result.skipped["shop/extra/api.yaml"] == (
        "data of compose project shop; it looks like a trueup manifest: move it out of the folder"
    )


def test_an_oversized_env_is_refused_as_too_large() -> None:
    """A project's ``.env`` over 1 MiB is never parsed: one problem naming it; pruning is
    suspended (the file failed)."""
    from controller.source.tree import OVERSIZED

    result = load_files({"s/compose.yaml": SHOP, "s/.env": OVERSIZED})
    assert [str(p) for p in result.problems] == ["s/.env:1:1: file is larger than 1024 KiB"]
    assert result.failed_files == {"s/compose.yaml"} and not result.apps
