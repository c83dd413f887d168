"""SOPS values: ``ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]`` decrypted with the data key,
their additional data the map keys on the value's path joined with ``:`` plus a trailing ``:``
(list indices are not part of it), and the canonical bytes each value contributes to the MAC.

Pure. A decrypted value becomes the Python value of its ``type`` (``str``, ``int``, ``float``,
``bool``, ``time`` as a `Timestamp`, ``bytes``/``comment`` as text); strings keep any byte
(``surrogateescape``), so a binary file round-trips exactly.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

_ENC = re.compile(r"^ENC\[AES256_GCM,data:([^,]*),iv:([^,]*),tag:([^,]*),type:([^\]]*)\]$")
MARKER = "ENC[AES256_GCM,"


class BadValue(ValueError):
    """A value that is not a SOPS value, or that does not decrypt under its path."""


class Timestamp(str):
    """A YAML timestamp (sops reads it as a time): the text as written; `canonical` gives the
    RFC 3339 form sops hashes and encrypts."""

    __slots__ = ()


class Comment(str):
    """A comment line of a dotenv file (encrypted as ``type:comment``, never in the MAC)."""

    __slots__ = ()


def is_encrypted(value: Any) -> bool:
    """True for a string in the ``ENC[AES256_GCM,...]`` form."""
    return isinstance(value, str) and value.startswith(MARKER)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise BadValue("a malformed encrypted value") from None


def decrypt_raw(value: str, key: bytes, aad: str) -> tuple[bytes, str]:
    """(plaintext bytes, type) of one ``ENC[...]`` value; ``BadValue`` when it is not one
    or does not authenticate under ``aad``."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    found = _ENC.match(value)
    if found is None:
        raise BadValue("a value that should be encrypted is not in the sops format")
    data, iv, tag, kind = (found.group(i) for i in range(1, 5))
    nonce = _b64(iv)
    if not nonce:
        raise BadValue("a malformed encrypted value")
    try:
        plain = AESGCM(key).decrypt(nonce, _b64(data) + _b64(tag), aad.encode())
    except InvalidTag:
        raise BadValue("a value does not authenticate (changed, or moved)") from None
    return plain, kind


def typed(plain: bytes, kind: str) -> Any:
    """The Python value of a decrypted plaintext of ``kind``."""
    text = plain.decode("utf-8", "surrogateescape")
    if kind in ("str", "bytes"):
        return text
    if kind == "comment":
        return Comment(text)
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise BadValue("an encrypted int that is not a number") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise BadValue("an encrypted float that is not a number") from None
    if kind == "bool":
        if text not in ("True", "False"):
            raise BadValue("an encrypted bool that is neither True nor False")
        return text == "True"
    if kind == "time":
        return Timestamp(text)
    raise BadValue(f"an encrypted value of unknown type {kind!r}")


def go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_TS = re.compile(
    r"^(\d{4})-(\d\d?)-(\d\d?)(?:(?:[Tt]|[ \t]+)(\d\d?):(\d\d):(\d\d)(?:\.(\d*))?"
    r"(?:[ \t]*(Z|[-+]\d\d?(?::?\d\d)?))?)?$"
)


def rfc3339(text: str, *, nano: bool = True) -> str:
    """Go's RFC 3339 form of a YAML timestamp (``RFC3339Nano`` by default, else seconds)."""
    found = _TS.match(text.strip())
    if found is None:
        return text
    y, mo, d, h, mi, s, frac, zone = found.groups()
    tz = UTC
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        hours, _, minutes = zone[1:].partition(":")
        if not minutes and len(hours) > 2:
            hours, minutes = hours[:2], hours[2:]
        tz = _zone(sign * (int(hours) * 60 + int(minutes or 0)))
    moment = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=tz)
    out = moment.strftime("%Y-%m-%dT%H:%M:%S")
    digits = (frac or "")[:9].rstrip("0")
    if nano and digits:
        out += "." + digits
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return out + "Z"
    minutes_total = int(offset.total_seconds() // 60)
    mark = "-" if minutes_total < 0 else "+"
    return out + f"{mark}{abs(minutes_total) // 60:02d}:{abs(minutes_total) % 60:02d}"


def _zone(minutes: int) -> timezone:
    return timezone(timedelta(minutes=minutes))


def canonical(value: Any) -> bytes:
    """The bytes sops hashes for a (plaintext) value: text as is, int in decimal, float as Go
    writes it, bool ``True``/``False``, a time in RFC 3339 (nanoseconds)."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, Timestamp):
        return rfc3339(value).encode()
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return go_float(value).encode()
    raise BadValue(f"a value of unsupported type {type(value).__name__}")
