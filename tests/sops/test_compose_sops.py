"""SOPS files in compose projects, through a whole pass on the in-memory engine: an encrypted
``env_file``, ``secrets: {x: {file: ...}}`` and committed ``.env`` reach the app and nothing
else; a re-encryption changes nothing, a changed value rolls; a broken file fails only the
apps (or the project) that use it and suspends pruning; what is refused, and where."""

from __future__ import annotations

from pathlib import Path

from controller import labels as L
from controller.compose.project import load_project
from controller.source.hostvars import read_variables
from tests.gitutil import commit_files
from tests.sops.lab import SopsLab, flip_first_value
from tests.sops.test_pass import API, Host, _everything_written

DB_PASSWORD = "dbpw-c0mp0se-41"
API_TOKEN = "tok-c0mp0se-7e"
TOKEN_FILE = "file-secret-c0mp0se-d2\n"
COMPOSE = """\
services:
  web:
    image: busybox:1.36
    env_file: [./web.sops.env]
    environment:
      DB_PASSWORD: ${DB_PASSWORD}
      DB_USER: ${DB_USER:-app}
    secrets: [token]
secrets:
  token: {file: ./token.sops.txt}
"""


def _files(
    lab: SopsLab, password: str = DB_PASSWORD, token: str = API_TOKEN, blob: str = TOKEN_FILE
) -> dict[str, str]:
    dotenv = lab.encrypt("shop/.env", f"DB_PASSWORD={password}\n".encode())
    env = lab.encrypt("web.sops.env", f"API_TOKEN={token}\nLEVEL=3\n".encode())
    secret = lab.encrypt("token.sops.txt", blob.encode())
    return {
        "shop/.env": dotenv.read_text(),
        "shop/web.sops.env": env.read_text(),
        "shop/token.sops.txt": secret.read_text(),
    }


def _host(tmp_path: Path, lab: SopsLab) -> Host:
    files = {"shop/compose.yaml": COMPOSE, "apps/api.yaml": API, **_files(lab)}
    return Host(tmp_path, lab, files)


def test_encrypted_env_file_dotenv_and_secret_reach_the_app_only(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """The env_file's and the .env's values are the app's environment, the secret file is at
    /run/secrets/token (0444 as in Compose, without compose_repo_secrets); labels, the
    desired-state cache and the plan hold none of them."""
    host = _host(tmp_path, sops_lab)
    result = host.run()
    assert result.problems == [] and not result.failed
    web = host.specs()["shop-web"]
    assert web.env["DB_PASSWORD"] == DB_PASSWORD and web.env["DB_USER"] == "app"
    assert web.env["API_TOKEN"] == API_TOKEN and web.env["LEVEL"] == "3"
    files = {f.path: f for f in web.files}
    assert files["/run/secrets/token"].data == TOKEN_FILE.encode()
    assert files["/run/secrets/token"].mode == 0o444  # Compose's default for a secret
    written = _everything_written(host, result)
    assert "desired-cache" in str(list(host.state.iterdir()))
    for value in (DB_PASSWORD, API_TOKEN, TOKEN_FILE.strip()):
        assert value not in written


def test_reencryption_changes_nothing_and_changed_values_roll(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """``sops rotate`` of all three files plans nothing; a new value in each rolls the app,
    each shown as ``(secret changed)``."""
    host = _host(tmp_path, sops_lab)
    assert not host.run().failed
    before = {name: spec.labels[L.SPEC_HASH] for name, spec in host.specs().items()}
    rotated = {}
    for name, text in _files(sops_lab).items():
        path = sops_lab.root / "rotate-compose" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sops_lab.run("rotate", "-i", "--input-type", _type(name), str(path))
        rotated[name] = path.read_text()
    commit_files(host.repo, rotated, "re-encrypt with new data keys")
    result = host.run()
    assert result.plan.changes == () and result.problems == []
    assert {n: s.labels[L.SPEC_HASH] for n, s in host.specs().items()} == before

    commit_files(host.repo, _files(sops_lab, "dbpw-new-1", "tok-new-2", "blob-new-3\n"), "new")
    result = host.run()
    assert [(c.app, c.action) for c in result.plan.changes] == [("shop-web", "update")]
    fields = {f.path: f.after for f in result.plan.changes[0].fields}
    assert fields["spec.env.DB_PASSWORD"] == "(secret changed)"
    assert fields["envFrom[shop/web.sops.env]"] == "(secret changed)"
    assert fields["files[/run/secrets/token]"] == "(secret changed)"
    env = host.specs()["shop-web"].env
    assert env["DB_PASSWORD"] == "dbpw-new-1" and env["API_TOKEN"] == "tok-new-2"


def _type(name: str) -> str:
    return "dotenv" if name.endswith(".env") else "binary"


def test_a_broken_env_file_fails_its_app_and_a_broken_dotenv_its_project(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """A tampered env_file fails shop-web, located and naming the file; a tampered .env is a
    problem of the .env and leaves the project's apps as they run; the manifest app still
    applies and pruning is suspended."""
    old = API.replace("name: api", "name: old")
    files = {"shop/compose.yaml": COMPOSE, "apps/api.yaml": API, "apps/old.yaml": old,
             **_files(sops_lab)}  # fmt: skip
    host = Host(tmp_path, sops_lab, files)
    assert not host.run().failed
    (host.repo / "apps/old.yaml").unlink()
    broken = flip_first_value(files["shop/web.sops.env"])
    commit_files(
        host.repo, {"shop/web.sops.env": broken, "apps/api.yaml": API + "  replicas: 2\n"}, "x"
    )
    result = host.run()
    assert [str(p) for p in result.problems] == [
        "shop/compose.yaml:2:1: app shop-web: spec.envFrom[0].file: shop/web.sops.env: "
        "refused: a value does not authenticate (changed, or moved)"
    ]
    assert [(c.app, c.action) for c in result.plan.changes] == [("api", "scale")]
    assert "pruning is suspended" in {s.app: s.reason for s in result.plan.skipped}["old"]

    commit_files(
        host.repo,
        {"shop/web.sops.env": files["shop/web.sops.env"],
         "shop/.env": flip_first_value(files["shop/.env"])},
        "a tampered .env",
    )  # fmt: skip
    result = host.run()
    assert [str(p) for p in result.problems] == [
        "shop/.env:1:1: refused: a value does not authenticate (changed, or moved)"
    ]
    assert "shop-web" not in {c.app for c in result.plan.changes}
    assert host.specs()["shop-web"].env["DB_PASSWORD"] == DB_PASSWORD


def test_without_the_hosts_identity_the_dotenv_is_a_located_problem(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """An encrypted .env for a recipient the host has no identity of: one problem at the
    .env; nothing of the project is deployed."""
    host = _host(tmp_path, sops_lab)
    result = host.run(key_files=(sops_lab.second_key_file,))
    assert result.problems and str(result.problems[0]).startswith("shop/.env:1:1: ")
    assert "shop-web" not in host.specs() and "api" in host.specs()


def _load(compose: str, dotenv: str, host: dict[str, str] | None = None) -> list[str]:
    result = load_project(
        "shop/compose.yaml",
        compose.encode(),
        dotenv=dotenv.encode(),
        variables=host or {},
        secret_dotenv="shop/.env",
    )
    return [str(p) for p in result.problems]


def test_secret_variables_are_whole_environment_values_only() -> None:
    """A variable of an encrypted .env becomes a secretRef to it as a whole environment value
    (map, list and bare forms); used in any other place it is a located error that never
    shows the value."""
    compose = """\
services:
  web:
    image: busybox:1.36
    environment:
      - A=${PW}
      - B
    command: ["echo", "x${PW}"]
    labels: {k: "${PW:-d}"}
"""
    problems = _load(compose, "PW=s3cr3t-v4lue\nB=other\n")
    assert problems == [
        "shop/compose.yaml:7:23: services.web.command[1]: variable PW comes from an encrypted "
        "file (shop/.env): it may only be the whole value of an environment variable "
        "(KEY: ${PW})",
        "shop/compose.yaml:8:17: services.web.labels.k: variable PW comes from an encrypted "
        "file (shop/.env): it may only be the whole value of an environment variable "
        "(KEY: ${PW})",
    ]
    ok = load_project(
        "shop/compose.yaml",
        b"services:\n  web:\n    image: busybox:1.36\n    environment:\n"
        b"      - A=${PW}\n      - B\n      - C=$PW\n",
        dotenv=b"PW=s3cr3t-v4lue\nB=other\n",
        variables={},
        secret_dotenv="shop/.env",
    )
    assert ok.problems == []
    env = ok.apps[0].app.spec.model_dump(mode="json", by_alias=True)["env"]
    assert env == {
        "A": {"secretRef": {"file": "shop/.env", "key": "PW", "name": None}},
        "B": {"secretRef": {"file": "shop/.env", "key": "B", "name": None}},
        "C": {"secretRef": {"file": "shop/.env", "key": "PW", "name": None}},
    }


def test_a_host_variable_overrides_and_plain_dotenv_stays_plain() -> None:
    """A host variable wins over the encrypted .env's and is a plain value; a .env that was not
    encrypted gives plain values as before."""
    compose = "services:\n  web:\n    image: busybox:1.36\n    environment: {A: '${PW}'}\n"
    over = load_project(
        "shop/compose.yaml", compose.encode(), dotenv=b"PW=x\n", variables={"PW": "host"},
        secret_dotenv="shop/.env",
    )  # fmt: skip
    assert over.apps[0].app.spec.env == {"A": "host"}
    plain = load_project("shop/compose.yaml", compose.encode(), dotenv=b"PW=x\n", variables={})
    assert plain.apps[0].app.spec.env == {"A": "x"}


def test_a_plain_committed_secret_still_comes_from_the_host(sops_lab: SopsLab) -> None:
    """Without compose_repo_secrets a committed secret file that is not SOPS-encrypted is read
    from the host's secrets dir (a warning says so); an encrypted one is the repo source."""
    compose = "services:\n  web:\n    image: busybox:1.36\n    secrets: [t]\nsecrets:\n"
    compose += "  t: {file: ./t.txt}\n"
    for encrypted, want in ((False, {"secretFile": "t"}), (True, {"source": "shop/t.txt"})):
        result = load_project(
            "shop/compose.yaml", compose.encode(), dotenv=None, variables={},
            encrypted=lambda path, e=encrypted: e and path == "shop/t.txt",
        )  # fmt: skip
        entry = result.apps[0].app.spec.files[0].model_dump(by_alias=True, exclude_none=True)
        assert {k: v for k, v in entry.items() if k in ("secretFile", "source")} == want
        assert bool(result.warnings) is not encrypted


def test_an_encrypted_host_variables_file_is_refused(tmp_path: Path, sops_lab: SopsLab) -> None:
    """A host variables file that is SOPS-encrypted is not read as KEY=ENC[...] values: the
    project's problem says why."""
    (tmp_path / "vars").mkdir()
    enc = sops_lab.encrypt("vars/shop.env", b"PW=host-s3cret\n")
    (tmp_path / "vars" / "shop.env").write_bytes(enc.read_bytes())
    (tmp_path / "vars" / "plain.env").write_text("A=b\n")
    values, errors = read_variables(tmp_path / "vars")
    assert values == {"plain": {"A": "b"}}
    assert "SOPS-encrypted" in errors["shop"] and "host-s3cret" not in errors["shop"]


def test_validate_decrypts_the_compose_sops_files(tmp_path: Path, sops_lab: SopsLab) -> None:
    """`trueup validate` reads the encrypted .env (the project is valid), checks the env_file
    and the secret file with the host's identity, and prints no value; a broken env_file is
    a problem of its app, a .env for another recipient one of the .env."""
    import subprocess
    import sys

    from tests.gitutil import make_repo

    files = _files(sops_lab)
    files["shop/web.sops.env"] = flip_first_value(files["shop/web.sops.env"])
    other = _files(sops_lab)
    other_env = sops_lab.encrypt(
        "other/.env", b"DB_PASSWORD=x\n", recipients=(sops_lab.second.recipient,)
    )
    repo = tmp_path / "repo"
    make_repo(
        repo,
        {
            "shop/compose.yaml": COMPOSE,
            **files,
            "other/compose.yaml": COMPOSE,
            "other/.env": other_env.read_text(),
            "other/web.sops.env": other["shop/web.sops.env"],
            "other/token.sops.txt": other["shop/token.sops.txt"],
        },
    )
    out = subprocess.run(
        [sys.executable, "-m", "controller", "validate", "--repo", str(repo),
         "--state-dir", str(tmp_path / "state"), f"--sops-age-key-file={sops_lab.key_file}"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    lines = [line[line.index("shop/") if "shop/" in line else line.index("other/") :]
             for line in out.stdout.splitlines()]  # fmt: skip
    assert lines[0].startswith("other/.env:1:1: ") and "recipient" in lines[0]
    assert lines[1] == (
        "shop/compose.yaml:2:1: app shop-web: spec.envFrom[0].file: shop/web.sops.env: "
        "refused: a value does not authenticate (changed, or moved)"
    )
    assert len(lines) == 2, lines
    assert "SOPS file(s) decrypted" in out.stderr
    for value in (DB_PASSWORD, API_TOKEN, TOKEN_FILE.strip()):
        assert value not in out.stdout + out.stderr


def test_a_secret_compose_reads_otherwise_than_sops_is_refused_and_never_shown() -> None:
    """A variable of the encrypted .env that is quoted or escaped (Compose would strip what
    sops keeps) is refused where it is used; a bad line of it is reported without its text."""
    compose = (
        "services:\n  web:\n    image: busybox:1.36\n    environment:\n"
        "      A: ${Q}\n      B: ${PLAIN}\n      C:\n"
    )
    dotenv = "Q='quoted-s3cret'\nPLAIN=plain-s3cret\n"
    dotenv += 'C="esc\\\\aped-s3cret"\nBAD="open-s3cret${\n'
    problems = _load(compose, dotenv)
    assert problems == [
        "shop/.env:4:1: BAD: not a value trueup can read (not shown)",
        "shop/compose.yaml:5:10: services.web.environment.A: variable Q of the encrypted .env "
        "is quoted, escaped, interpolated or followed by a comment there, which sops reads "
        "literally: write it as KEY=value",
        "shop/compose.yaml:7:9: services.web.environment.C: variable C of the encrypted .env "
        "is quoted, escaped, interpolated or followed by a comment there, which sops reads "
        "literally: write it as KEY=value",
    ]
    assert not [p for p in problems if "s3cret" in p]


def test_an_identity_added_on_the_host_is_used_on_the_next_pass(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """The controller's loop keeps one reconciler: a .env it could not decrypt is not
    remembered as parsed, so the pass after the host's key file gains the identity applies."""
    import asyncio

    from controller.reconciler import Reconciler
    from controller.source import GitSource
    from controller.targets.containers.target import ContainerTarget

    host = _host(tmp_path, sops_lab)
    key = tmp_path / "host.key"
    key.write_bytes(sops_lab.second_key_file.read_bytes())
    key.chmod(0o600)

    async def two_passes() -> list[list[str]]:
        with GitSource(str(host.repo), state_dir=host.state) as source:
            reconciler = Reconciler(
                source, ContainerTarget(host.runtime), instance="t", sops_age_key_files=(key,)
            )
            first = await reconciler.run_pass()
            key.write_bytes(sops_lab.key_file.read_bytes())
            second = await reconciler.run_pass()
        return [[str(p) for p in first.problems], [str(p) for p in second.problems]]

    first, second = asyncio.run(two_passes())
    assert len(first) == 1 and first[0].startswith("shop/.env:1:1: none of the host's age")
    assert second == [] and host.specs()["shop-web"].env["DB_PASSWORD"] == DB_PASSWORD


def test_an_encrypted_config_file_is_decrypted_as_a_secret_file(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """A ``configs:`` file that is SOPS-encrypted reaches the container decrypted, with the
    secret-file mode (0400), and never as ciphertext."""
    conf = sops_lab.encrypt("app.sops.yaml", b"password: conf-s3cret-9\n").read_text()
    uses = "    secrets: [token]\n"
    compose = COMPOSE.replace(uses, uses + "    configs: [app]\n")
    compose += "configs:\n  app: {file: ./app.sops.yaml}\n"
    files = {"shop/compose.yaml": compose, "shop/app.sops.yaml": conf, **_files(sops_lab)}
    host = Host(tmp_path, sops_lab, files)
    result = host.run()
    assert result.problems == []
    found = {f.path: f for f in host.specs()["shop-web"].files}["/app"]
    assert found.data == b"password: conf-s3cret-9\n" and found.mode == 0o400
    assert "conf-s3cret-9" not in _everything_written(host, result)
