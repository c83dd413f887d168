"""`trueup validate` decrypts every SOPS file the apps use with the host's identities (or says
whose recipients the file has), never printing a value; `diff` shows ``(secret changed)``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.gitutil import make_repo
from tests.sops.lab import SopsLab, flip_first_value

SECRET = "val-0c8e44"
APP = """\
apiVersion: trueup/v1
kind: App
metadata: {{name: {name}}}
spec:
  image: busybox:1.36
  env:
    TOKEN: {{secretRef: {{file: {file}, key: {key}}}}}
"""


def _validate(repo: Path, tmp: Path, *keys: Path) -> subprocess.CompletedProcess[str]:
    flags = [f"--sops-age-key-file={k}" for k in keys]
    return subprocess.run(
        [sys.executable, "-m", "controller", "validate", "--repo", str(repo),
         "--state-dir", str(tmp / "state"), *flags],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def _shown(stdout: str) -> list[str]:
    """The problem lines, each from its repository path on (validate shows them relative to
    the current directory)."""
    return [line[line.index("apps/") :] for line in stdout.splitlines()]


def _repo(tmp: Path, lab: SopsLab) -> Path:
    good = lab.encrypt("good.sops.yaml", f"token: {SECRET}\n".encode()).read_text()
    other = lab.encrypt(
        "other.sops.env", f"TOKEN={SECRET}\n".encode(), recipients=(lab.second.recipient,)
    ).read_text()
    repo = tmp / "repo"
    make_repo(
        repo,
        {
            "apps/a.yaml": APP.format(name="a", file="secrets/good.sops.yaml", key="token"),
            "apps/b.yaml": APP.format(name="b", file="secrets/other.sops.env", key="TOKEN"),
            "apps/c.yaml": APP.format(name="c", file="secrets/good.sops.yaml", key="nope"),
            "apps/d.yaml": APP.format(name="d", file="secrets/bad.sops.yaml", key="token"),
            "secrets/good.sops.yaml": good,
            "secrets/other.sops.env": other,
            "secrets/bad.sops.yaml": flip_first_value(good),
        },
    )
    return repo


def test_validate_decrypts_with_the_host_identities(tmp_path: Path, sops_lab: SopsLab) -> None:
    """Each app whose SOPS file does not decrypt, or lacks the key, is a located problem; the
    recipients are named, no value is printed, and the exit code is 1."""
    done = _validate(_repo(tmp_path, sops_lab), tmp_path, sops_lab.key_file)
    assert done.returncode == 1, done.stderr
    lines = _shown(done.stdout)
    assert len(lines) == 3, done.stdout
    assert lines[0].startswith("apps/b.yaml:1:1: app b: spec.env.TOKEN: secrets/other.sops.env: ")
    assert sops_lab.second.recipient in lines[0] and "none of the host's age" in lines[0]
    assert (
        lines[1]
        == "apps/c.yaml:1:1: app c: spec.env.TOKEN: secrets/good.sops.yaml: has no key 'nope'"
    )
    assert lines[2].startswith("apps/d.yaml:1:1: app d: spec.env.TOKEN: secrets/bad.sops.yaml: ")
    assert SECRET not in done.stdout + done.stderr
    assert "3 SOPS file(s) decrypted" in done.stderr

    both = _validate(
        _repo(tmp_path / "2", sops_lab), tmp_path, sops_lab.key_file, sops_lab.second_key_file
    )
    assert [line.split(":")[0] for line in _shown(both.stdout)] == [
        "apps/c.yaml",
        "apps/d.yaml",
    ]


def test_validate_without_identities_checks_the_format_only(
    tmp_path: Path, sops_lab: SopsLab
) -> None:
    """Without --sops-age-key-file (CI), SOPS files are checked as files, not decrypted."""
    done = _validate(_repo(tmp_path, sops_lab), tmp_path)
    assert "checked without decrypting" in done.stderr
    assert _shown(done.stdout) == []
    assert done.returncode == 0
