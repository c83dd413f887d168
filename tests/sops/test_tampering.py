"""A SOPS file changed after sops wrote it is refused exactly where sops refuses it; kinds
trueup does not support are refused saying why."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.errors import SopsError
from controller.sops import decrypt_file, load_identities
from controller.sops.age import Identity
from controller.sops.identities import Identities
from tests.sops.lab import SopsLab, flip_first_value

YAML_PLAIN = b"user: app\npassword: s3cret\ntoken: abc123\nlist: [a, b]\nname_unencrypted: x\n"
ENV_PLAIN = b"USER=app\nPASSWORD=s3cret\nTOKEN=abc123\nNAME_unencrypted=x\n"


def _swap(text: str) -> str:
    """The values of the password and token swapped."""
    values = re.findall(r"ENC\[AES256_GCM,[^\]]+type:str\]", text)
    a, b = values[1], values[2]
    return text.replace(a, "\0").replace(b, a).replace("\0", b)


def _lastmodified(text: str) -> str:
    return re.sub(r"(lastmodified\W+)(\d{4})", lambda m: m.group(1) + "1999", text, count=1)


def _mac(text: str) -> str:
    found = re.search(r"mac\W+ENC\[AES256_GCM,data:([^,]+),", text)
    assert found is not None
    data = bytearray(base64.b64decode(found.group(1)))
    data[-1] ^= 1
    return text.replace(found.group(1), base64.b64encode(bytes(data)).decode(), 1)


def _retype(text: str) -> str:
    return text.replace("type:str]", "type:int]", 1)


YAML_TAMPERS: dict[str, Callable[[str], str]] = {
    "flipped byte in a value": flip_first_value,
    "swapped values": _swap,
    "changed lastmodified": _lastmodified,
    "flipped mac": _mac,
    "injected key": lambda t: "injected: hello\n" + t,
    "injected unencrypted key": lambda t: "injected_unencrypted: hello\n" + t,
    "removed key": lambda t: re.sub(r"^user: .*\n", "", t, flags=re.MULTILINE),
    "changed unencrypted value": lambda t: t.replace("name_unencrypted: x", "name_unencrypted: y"),
    "removed sops block": lambda t: t[: t.index("sops:")],
    "changed type": _retype,
    "untouched": lambda t: t,
}
ENV_TAMPERS: dict[str, Callable[[str], str]] = {
    "flipped byte in a value": flip_first_value,
    "swapped values": _swap,
    "changed lastmodified": _lastmodified,
    "injected key": lambda t: "INJECTED=hello\n" + t,
    "removed key": lambda t: re.sub(r"^USER=.*\n", "", t, flags=re.MULTILINE),
    "removed sops block": lambda t: "".join(
        line for line in t.splitlines(keepends=True) if not line.startswith("sops_")
    ),
    "untouched": lambda t: t,
}


def _verdicts(lab: SopsLab, original: Path, case: str, tamper: Callable[[str], str]) -> None:
    tampered = original.with_name(f"t-{case.replace(' ', '-')}{original.suffix}")
    tampered.write_text(tamper(original.read_text()))
    sops_accepts = lab.sops_decrypt(tampered) is not None
    try:
        decrypt_file(
            tampered.read_bytes(),
            file=tampered.name,
            identities=load_identities([lab.key_file]),
        )
        trueup_accepts = True
    except SopsError as exc:
        trueup_accepts = False
        assert tampered.name in str(exc)
        assert "s3cret" not in str(exc) and "abc123" not in str(exc)
    assert trueup_accepts == sops_accepts
    assert trueup_accepts == (case == "untouched")


@pytest.mark.parametrize("case", sorted(YAML_TAMPERS))
def test_tampered_yaml_refused_where_sops_refuses(sops_lab: SopsLab, case: str) -> None:
    """Each change to an encrypted YAML file gets the verdict sops gives it."""
    original = sops_lab.encrypt("tamper.yaml", YAML_PLAIN)
    _verdicts(sops_lab, original, case, YAML_TAMPERS[case])


@pytest.mark.parametrize("case", sorted(ENV_TAMPERS))
def test_tampered_dotenv_refused_where_sops_refuses(sops_lab: SopsLab, case: str) -> None:
    """Each change to an encrypted dotenv file gets the verdict sops gives it."""
    original = sops_lab.encrypt("tamper.env", ENV_PLAIN)
    _verdicts(sops_lab, original, case, ENV_TAMPERS[case])


def _refusal(raw: bytes, identities: Identities) -> str:
    with pytest.raises(SopsError) as caught:
        decrypt_file(raw, file="secrets/x.sops.yaml", identities=identities)
    assert str(caught.value).startswith("secrets/x.sops.yaml: ")
    return str(caught.value)


def test_no_matching_identity_names_the_recipients(sops_lab: SopsLab) -> None:
    """A file for another recipient says which recipients it has and that none matches."""
    path = sops_lab.encrypt("other.yaml", b"a: b\n", recipients=(sops_lab.second.recipient,))
    message = _refusal(path.read_bytes(), load_identities([sops_lab.key_file]))
    assert sops_lab.second.recipient in message
    assert "none of the host's age identities" in message
    message = _refusal(path.read_bytes(), load_identities([]))
    assert "no sops_age_key_file" in message and sops_lab.second.recipient in message


def test_unreadable_key_file_is_said(sops_lab: SopsLab, tmp_path: Path) -> None:
    """A key file that cannot be read or has a bad line is named, never its text shown."""
    bad = tmp_path / "bad.txt"
    bad.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    identities = load_identities([tmp_path / "missing.txt", bad, sops_lab.key_file])
    assert len(identities.keys) == 1
    assert any("missing.txt" in p for p in identities.problems)
    assert any(p.endswith("bad.txt:1: not an age identity") for p in identities.problems)
    assert not any("NOTAKEY" in p for p in identities.problems)


def test_shamir_key_groups_refused(sops_lab: SopsLab) -> None:
    """A data key split over key groups (Shamir) is refused, saying so."""
    config = (
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        f"      - age: [{sops_lab.first.recipient}]\n      - age: [{sops_lab.second.recipient}]\n"
    )
    path = sops_lab.encrypt("shamir.yaml", b"a: b\n", config=config)
    message = _refusal(path.read_bytes(), load_identities([sops_lab.key_file]))
    assert "Shamir" in message


def test_pgp_only_and_post_quantum_refused(sops_lab: SopsLab) -> None:
    """A file with PGP keys only, or post-quantum recipients only, is refused saying why."""
    text = sops_lab.encrypt("pgp.yaml", b"a: b\n").read_text()
    ids = load_identities([sops_lab.key_file])
    age_block = r"    age:\n(?:        .*\n|          .*\n)+"
    pgp = re.sub(age_block, "    pgp:\n        - fp: AB\n", text)
    assert "age:" not in pgp
    assert "pgp" in _refusal(pgp.encode(), ids)
    quantum = text.replace(sops_lab.first.recipient, "age1pq1" + "q" * 50)
    assert "post-quantum" in _refusal(quantum.encode(), ids)


def test_passphrase_age_file_refused() -> None:
    """An scrypt (passphrase) age stanza is refused, never tried."""
    from controller.sops.age import AgeError, decrypt

    header = b"age-encryption.org/v1\n-> scrypt c2FsdA 10\nYWJj\n--- bWFj\n"
    with pytest.raises(AgeError, match="passphrase"):
        decrypt(header + b"\0" * 40, [Identity.generate()])


def test_ini_file_refused(sops_lab: SopsLab) -> None:
    """An INI file sops encrypted is refused, saying which formats trueup reads."""
    path = sops_lab.encrypt("conf.ini", b"[db]\npassword = s3cret\n")
    message = _refusal(path.read_bytes(), load_identities([sops_lab.key_file]))
    assert "INI" in message and "s3cret" not in message


def test_repo_plaintext_for_other_readers(sops_lab: SopsLab) -> None:
    """`RepoSops.plaintext` (for env files and compose secrets) gives a SOPS file decrypted, a
    plain file as committed, and a tampered file's located error."""
    from controller.sops.repo import RepoSops

    good = sops_lab.encrypt("web.env", b"A=1\nB=two\n").read_bytes()
    files = {
        "web.env": good,
        "plain.env": b"C=3\n",
        "bad.env": flip_first_value(good.decode()).encode(),
    }
    sops = RepoSops(files.__getitem__, (sops_lab.key_file,))
    assert sops.plaintext("web.env") == b"A=1\nB=two\n"
    assert sops.plaintext("plain.env") == b"C=3\n"
    with pytest.raises(SopsError, match=r"^bad\.env: refused"):
        sops.plaintext("bad.env")


@pytest.mark.parametrize("name", ["fuzz.yaml", "fuzz.env", "fuzz.json"])
def test_any_corruption_is_a_located_error(sops_lab: SopsLab, name: str) -> None:
    """Whatever bytes a committer writes, decryption gives the plaintext or a `SopsError`
    naming the file, never another exception."""
    import random

    plain = {"fuzz.yaml": YAML_PLAIN, "fuzz.env": ENV_PLAIN,
             "fuzz.json": b'{"a": [1, {"b": "c"}], "d": 2.5}'}[name]  # fmt: skip
    raw = sops_lab.encrypt(name, plain).read_bytes()
    ids = load_identities([sops_lab.key_file])
    rng = random.Random(22)
    for _ in range(300):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            data[at : at + rng.randint(0, 3)] = bytes(
                rng.randrange(256) for _ in range(rng.randint(0, 3))
            )
        try:
            decrypt_file(bytes(data), file=name, identities=ids)
        except SopsError as exc:
            assert str(exc).startswith(f"{name}: ")
