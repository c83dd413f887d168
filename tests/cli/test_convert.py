"""`trueup convert FILE`: the manifests a compose file translates to, which `trueup validate`
loads back to the very apps a pass deploys from the compose file."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from controller.cli.main import main
from controller.manifests.loader import load_files
from tests.gitutil import make_repo

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "compose" / "shop"


def test_the_example_converts_to_manifests_that_validate_to_the_same_apps(tmp_path: Path) -> None:
    """Round trip: convert the example's compose file, commit the output as a manifest, and
    `trueup validate` passes; the loaded apps equal those of the compose project itself."""
    repo = tmp_path / "repo"
    shutil.copytree(SHOP, repo / "compose" / "shop")
    (repo / "compose" / "shop" / "web.env").write_text("GREETING=hello\n")
    compose = repo / "compose" / "shop" / "compose.yaml"
    compose.write_text(
        compose.read_text().replace("    restart: unless-stopped\n", "    env_file: [web.env]\n")
    )
    runner = CliRunner()
    out = runner.invoke(main, ["convert", str(compose), "--repo", str(repo)])
    assert out.exit_code == 0, out.output
    assert out.stdout.count("kind: App") == 2
    originals = load_files(
        {
            "compose/shop/compose.yaml": compose.read_bytes(),
            "compose/shop/.env": (repo / "compose" / "shop" / ".env").read_bytes(),
        }
    )
    assert sorted(originals.apps) == ["shop-db", "shop-web"]
    make_repo(tmp_path / "moved", {"apps/shop.yaml": out.stdout})
    check = runner.invoke(main, ["validate", "--repo", str(tmp_path / "moved")])
    assert check.exit_code == 0, check.output
    assert "2 app(s) in 1 file(s)" in check.stderr
    back = load_files({"apps/shop.yaml": out.stdout.encode()})
    assert not back.problems
    assert {n: a.app for n, a in back.apps.items()} == {n: a.app for n, a in originals.apps.items()}
    assert [e.file for e in back.apps["shop-web"].app.spec.env_from] == ["compose/shop/web.env"]


def test_a_broken_compose_file_prints_every_located_problem_and_exits_1(tmp_path: Path) -> None:
    """Two mistakes, two located lines on stderr; the service without one is still printed."""
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "name: p\nservices:\n  web:\n    image: busybox:1.36\n    restat: always\n"
        "  db:\n    image: busybox:1.36\n    depends_on: [nope]\n"
        "  ok:\n    image: busybox:1.36\n"
    )
    out = CliRunner().invoke(main, ["convert", str(compose), "--repo", str(tmp_path)])
    assert out.exit_code == 1
    lines = out.stderr.splitlines()
    assert any(line.startswith("compose.yaml:5:5: services.web.restat") for line in lines), lines
    assert any(line.startswith("compose.yaml:8:") and "nope" in line for line in lines), lines
    assert "name: p-ok" in out.stdout and "p-web" not in out.stdout


def test_a_file_outside_the_repo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {web: {image: busybox:1.36}}\n")
    (tmp_path / "repo").mkdir()
    out = CliRunner().invoke(
        main, ["convert", str(tmp_path / "compose.yaml"), "--repo", str(tmp_path / "repo")]
    )
    assert out.exit_code == 2 and "is not inside --repo" in out.stderr
