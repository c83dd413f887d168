"""The age file format (age-encryption.org/v1), decrypt side, for X25519 identities only:
what SOPS wraps its data key in (``sops.age[].enc``, an ASCII-armored age file).

Header lines, one stanza per recipient (``-> X25519 <ephemeral share>`` and the wrapped file
key), the header MAC (HMAC-SHA256 under an HKDF of the file key), then the payload in 64 KiB
ChaCha20-Poly1305 chunks. scrypt (passphrase) and post-quantum stanzas are never unwrapped:
``AgeError`` says so. Pure: bytes and keys in, bytes out. ``cryptography`` is imported where it
is used, so a pass that decrypts nothing never loads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.sops import bech32

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

INTRO = b"age-encryption.org/v1\n"
ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
_CHUNK = 64 * 1024
_X25519_INFO = b"age-encryption.org/v1/X25519"
IDENTITY_HRP = "age-secret-key-"
RECIPIENT_HRP = "age"


class AgeError(ValueError):
    """An age file that is malformed, or that none of the given identities opens."""


@dataclass(frozen=True)
class Identity:
    """An X25519 age identity; ``recipient`` is its public ``age1...`` form."""

    key: X25519PrivateKey = field(repr=False)
    recipient: str

    @classmethod
    def parse(cls, text: str) -> Identity:
        """An identity from its ``AGE-SECRET-KEY-1...`` text; ``AgeError`` when it is not one."""
        try:
            hrp, data = bech32.decode(text.strip())
        except ValueError as exc:
            raise AgeError(f"not an age identity ({exc})") from None
        if hrp != IDENTITY_HRP or len(data) != 32:
            raise AgeError("not an X25519 age identity (AGE-SECRET-KEY-1...)")
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        key = X25519PrivateKey.from_private_bytes(data)
        return cls(key, bech32.encode(RECIPIENT_HRP, key.public_key().public_bytes_raw()))

    def text(self) -> str:
        """The identity's ``AGE-SECRET-KEY-1...`` form (for key files made in tests)."""
        return bech32.encode(IDENTITY_HRP, self.key.private_bytes_raw()).upper()

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity."""
        import os

        return cls.parse(bech32.encode(IDENTITY_HRP, os.urandom(32)))


@dataclass(frozen=True)
class Stanza:
    kind: str
    args: tuple[str, ...]
    body: bytes


def _b64(text: bytes | str) -> bytes:
    """Unpadded canonical base64 as age writes it."""
    raw = text.encode() if isinstance(text, str) else text
    if raw.endswith(b"=") or b"\n" in raw or b"\r" in raw:
        raise AgeError("non-canonical base64 in the age header")
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise AgeError(f"bad base64 in the age header ({exc})") from None


def dearmor(text: str) -> bytes:
    """The binary age file inside an ASCII armor (``-----BEGIN AGE ENCRYPTED FILE-----``)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 2 or lines[0] != ARMOR_BEGIN or lines[-1] != ARMOR_END:
        raise AgeError("the wrapped data key is not an armored age file")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error as exc:
        raise AgeError(f"bad base64 in the armored age file ({exc})") from None


def parse_header(data: bytes) -> tuple[list[Stanza], bytes, bytes, bytes]:
    """(stanzas, the header bytes the MAC covers, the MAC, the payload)."""
    if not data.startswith(INTRO):
        raise AgeError("not an age v1 file")
    pos = len(INTRO)
    stanzas: list[Stanza] = []
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise AgeError("truncated age header")
        line = data[pos:end]
        if line.startswith(b"--- "):
            covered = data[: pos + 3]
            return stanzas, covered, _b64(line[4:]), data[end + 1 :]
        if not line.startswith(b"-> "):
            raise AgeError("malformed age header line")
        words = line[3:].decode("ascii", "replace").split(" ")
        pos = end + 1
        body = b""
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                raise AgeError("truncated age stanza")
            chunk = data[pos:end]
            pos = end + 1
            if len(chunk) > 64:
                raise AgeError("age stanza line longer than 64 columns")
            body += chunk
            if len(chunk) < 64:
                break
        stanzas.append(Stanza(words[0], tuple(words[1:]), _b64(body) if body else b""))


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _unwrap(stanza: Stanza, identity: Identity) -> bytes | None:
    if len(stanza.args) != 1 or len(stanza.body) != 32:
        raise AgeError("malformed X25519 stanza")
    share = _b64(stanza.args[0])
    if len(share) != 32:
        raise AgeError("malformed X25519 stanza")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    secret = identity.key.exchange(X25519PublicKey.from_public_bytes(share))
    own = identity.key.public_key().public_bytes_raw()
    wrap_key = _hkdf(secret, share + own, _X25519_INFO)
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(b"\0" * 12, stanza.body, None)
    except InvalidTag:
        return None  # this stanza was made for another recipient


def _file_key(stanzas: Sequence[Stanza], identities: Sequence[Identity]) -> bytes:
    kinds = {s.kind for s in stanzas}
    if "scrypt" in kinds:
        raise AgeError("a passphrase (scrypt) age file: only X25519 identities are supported")
    for stanza in stanzas:
        if stanza.kind != "X25519":
            continue
        for identity in identities:
            key = _unwrap(stanza, identity)
            if key is not None:
                return key
    if "X25519" not in kinds:
        shown = ", ".join(sorted(kinds)) or "none"
        raise AgeError(
            f"no X25519 recipient (stanzas: {shown}); post-quantum and plugin "
            "recipients are not supported"
        )
    raise AgeError("none of the host's age identities is a recipient")


def decrypt(data: bytes, identities: Sequence[Identity]) -> bytes:
    """The plaintext of a binary age file, opened with one of ``identities``."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    stanzas, covered, mac, payload = parse_header(data)
    file_key = _file_key(stanzas, identities)
    expected = hmac.new(_hkdf(file_key, b"", b"header"), covered, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise AgeError("the age header MAC does not verify")
    if len(payload) < 16 + 16:
        raise AgeError("truncated age payload")
    aead = ChaCha20Poly1305(_hkdf(file_key, payload[:16], b"payload"))
    body = payload[16:]
    out = bytearray()
    counter = 0
    while True:
        chunk, body = body[: _CHUNK + 16], body[_CHUNK + 16 :]
        last = not body
        nonce = counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        try:
            out += aead.decrypt(nonce, chunk, None)
        except InvalidTag:
            raise AgeError("the age payload does not authenticate") from None
        if last:
            return bytes(out)
        counter += 1
