"""trueup's decryptor against the real sops: the same plaintext for every format and rule."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.sops import decrypt_file, load_identities
from controller.sops.formats import _Yaml12Loader
from tests.sops.lab import SopsLab

YAML_DOC = b"""\
db:
  user: app
  password: s3cr3t with spaces
  port: 5432
  ratio: 1e-06
  big: 12.5
  on: true
  off: false
  started: 2024-01-02T03:04:05.123Z
  day: 2024-01-01
list:
  - one
  - 2
  - nested: {key: value}
# a comment
empty: ""
nothing: null
unicode: "h\\u00e9llo \\U0001F600"
multiline: |
  line one
  line two
"""

JSON_DOC = json.dumps(
    {
        "name": "app",
        "password": "pa=ss\nword",
        "n": 3,
        "f": 2.5,
        "t": True,
        "nested": {"a": [1, "x", {"b": None}], "empty": ""},
    }
).encode()

DOTENV_DOC = b"""\
# database
DB_PASSWORD=pa ss=word
DB_USER=app
QUOTED="kept as written"
EMPTY=
URL=postgres://u:p@h/db?x=1
"""

MULTI_DOC = b"""\
first: one
secret: alpha
---
second: two
secret: beta
nested:
  deep: [1, 2]
"""

RULES = [
    ("suffix.yaml", ["--encrypted-suffix", "_secret"],
     b"user: a\npw_secret: b\nx:\n  y_secret: {z: 1}\n"),
    ("unsuffix.yaml", ["--unencrypted-suffix", "_plain"],
     b"user_plain: a\npw: b\nn: {k_plain: 1, v: 2}\n"),
    ("regex.yaml", ["--encrypted-regex", "^(pass|key)"],
     b"user: a\npassword: b\nn: {keyring: [1, 2]}\n"),
    ("unregex.yaml", ["--unencrypted-regex", "^pub"],
     b"public: a\npassword: b\nm: {pubkey: c, d: 4}\n"),
    ("regex.json", ["--encrypted-regex", "secret"],
     b'{"a": 1, "my_secret": "x", "o": {"secret": 2.5}}'),
    ("suffix.env", ["--unencrypted-suffix", "_PUBLIC"], b"A_PUBLIC=visible\nB=hidden\n"),
]  # fmt: skip


def _load_yaml(data: bytes) -> list[Any]:
    return list(yaml.load_all(data.decode(), Loader=_Yaml12Loader))


def _same(name: str, ours: bytes, theirs: bytes) -> None:
    """Byte for byte for dotenv and binary files; the same data for YAML and JSON (whose
    layout sops chooses)."""
    if name.endswith((".yaml", ".yml")):
        assert _load_yaml(ours) == _load_yaml(theirs)
    elif name.endswith(".json"):
        assert json.loads(ours) == json.loads(theirs)
    else:
        assert ours == theirs


def _check(lab: SopsLab, path: Path, name: str, key_file: Path | None = None) -> bytes:
    theirs = lab.sops_decrypt(path, key_file=key_file)
    assert theirs is not None
    identities = load_identities([key_file or lab.key_file])
    ours = decrypt_file(path.read_bytes(), file=name, identities=identities)
    _same(name, ours.plaintext, theirs)
    return ours.plaintext


@pytest.mark.parametrize(
    ("name", "plaintext"),
    [
        ("doc.yaml", YAML_DOC),
        ("doc.json", JSON_DOC),
        ("doc.env", DOTENV_DOC),
        ("multi.yaml", MULTI_DOC),
        ("blob.bin", os.urandom(3000) + b"\x00\xff" + bytes(range(256))),
        ("text.txt", b"-----BEGIN KEY-----\nabc\n-----END KEY-----\n"),
    ],
)
def test_plaintext_equals_sops_decrypt(sops_lab: SopsLab, name: str, plaintext: bytes) -> None:
    """Every format decrypts to what ``sops decrypt`` prints, the MAC verified."""
    path = sops_lab.encrypt(name, plaintext)
    ours = _check(sops_lab, path, name)
    if name.endswith((".bin", ".txt", ".env")):
        assert ours == plaintext  # sops gives these back byte for byte too


@pytest.mark.parametrize(("name", "args", "plaintext"), RULES)
def test_suffix_regex_and_mac_only_rules(
    sops_lab: SopsLab, name: str, args: list[str], plaintext: bytes
) -> None:
    """Suffix and regex rules and ``mac_only_encrypted`` decrypt as sops does."""
    path = sops_lab.encrypt(name, plaintext, *args)
    _check(sops_lab, path, name)


@pytest.mark.parametrize("name", ["maconly.yaml", "maconly.json", "maconly.env"])
def test_mac_only_encrypted(sops_lab: SopsLab, name: str) -> None:
    """``mac_only_encrypted`` (the MAC over encrypted values only) verifies as sops's does."""
    plain = {
        "maconly.yaml": b"user: a\npassword: b\nport: 5432\n",
        "maconly.json": b'{"user": "a", "password": "b", "port": 5432}',
        "maconly.env": b"user=a\npassword=b\n",
    }[name]
    rule = "encrypted_regex: ^password$\n    mac_only_encrypted: true"
    path = sops_lab.encrypt(name, plain, rule=rule)
    assert "mac_only_encrypted" in path.read_text()
    _check(sops_lab, path, name)


def test_several_recipients_any_identity_opens(sops_lab: SopsLab) -> None:
    """A file for two recipients opens with either identity alone."""
    both = (sops_lab.first.recipient, sops_lab.second.recipient)
    path = sops_lab.encrypt("two.yaml", b"password: shared\n", recipients=both)
    _check(sops_lab, path, "two.yaml")
    _check(sops_lab, path, "two.yaml", key_file=sops_lab.second_key_file)


def test_values_by_key(sops_lab: SopsLab) -> None:
    """A secretRef's key reads a top-level value (or ``a.b`` nested) as text."""
    ids = load_identities([sops_lab.key_file])
    env = sops_lab.encrypt("keys.env", DOTENV_DOC)
    decrypted = decrypt_file(env.read_bytes(), file="keys.env", identities=ids)
    assert decrypted.value("DB_PASSWORD") == "pa ss=word"
    doc = sops_lab.encrypt("keys.yaml", YAML_DOC)
    decrypted = decrypt_file(doc.read_bytes(), file="keys.yaml", identities=ids)
    assert decrypted.value("db.password") == "s3cr3t with spaces"
    assert decrypted.value("db.port") == "5432"
    assert decrypted.value("db.on") == "true"
    assert decrypted.value("multiline") == "line one\nline two\n"
