"""The ``sops`` metadata block: which rules say what is encrypted, and the data key, unwrapped
from the file's age recipients with the host's identities.

What trueup does not support is refused here with the reason: several key groups (Shamir
splitting), files encrypted only for PGP or a cloud KMS, post-quantum or plugin age recipients,
the comment regexes (trueup does not read comments), more than one encryption rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.sops import age
from controller.sops.values import rfc3339

RULES = ("unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex")
_OTHER_KEYS = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault")


class MetadataError(ValueError):
    """Metadata trueup cannot use; the message says why."""


@dataclass(frozen=True)
class Rules:
    """Which values are encrypted: by key suffix or by key regex (one rule at most)."""

    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    mac_only_encrypted: bool = False

    def encrypted(self, path: Sequence[str]) -> bool:
        """Whether the value at ``path`` (its map keys) is encrypted, as sops decides."""
        if self.unencrypted_suffix and any(k.endswith(self.unencrypted_suffix) for k in path):
            return False
        if self.encrypted_suffix:
            return any(k.endswith(self.encrypted_suffix) for k in path)
        if self.unencrypted_regex and any(re.search(self.unencrypted_regex, k) for k in path):
            return False
        if self.encrypted_regex:
            return any(re.search(self.encrypted_regex, k) for k in path)
        return True


@dataclass(frozen=True)
class Metadata:
    """What a sops block says, checked."""

    recipients: tuple[str, ...]
    wrapped: tuple[str, ...]
    """Each age recipient's armored age file holding the data key."""
    lastmodified: str
    """``lastmodified`` as Go's RFC 3339 (seconds): the MAC's additional data."""
    mac: str
    rules: Rules


def _text(block: Mapping[str, Any], key: str) -> str:
    value = block.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MetadataError(f"sops.{key} is not a string")
    return value


def _age_entries(block: Mapping[str, Any]) -> list[Any]:
    groups = block.get("key_groups")
    threshold = block.get("shamir_threshold")
    if groups is not None:
        if not isinstance(groups, list) or len(groups) > 1:
            raise MetadataError(
                "the data key is split over several key groups (Shamir); trueup supports "
                "one group of age recipients"
            )
        entries = groups[0].get("age") if groups and isinstance(groups[0], dict) else None
    else:
        entries = block.get("age")
    if threshold not in (None, "", 0, 1, "0", "1"):
        raise MetadataError(f"shamir_threshold {threshold} is not supported")
    if not entries:
        others = [k for k in _OTHER_KEYS if block.get(k)]
        if groups and isinstance(groups[0], dict):
            others += [k for k in _OTHER_KEYS if groups[0].get(k)]
        shown = ", ".join(dict.fromkeys(others)) or "no key at all"
        raise MetadataError(
            f"the file has no age recipient ({shown}); trueup decrypts with age identities only"
        )
    if not isinstance(entries, list):
        raise MetadataError("sops.age is not a list")
    return entries


def _lastmodified(block: Mapping[str, Any]) -> str:
    value = block.get("lastmodified")
    text = value if isinstance(value, str) else str(value or "")
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MetadataError("sops.lastmodified is not a time") from None
    return rfc3339(text, nano=False)


def read_metadata(block: Mapping[str, Any]) -> Metadata:
    """The checked metadata of a sops block; ``MetadataError`` saying what is unsupported."""
    for key in ("encrypted_comment_regex", "unencrypted_comment_regex"):
        if block.get(key):
            raise MetadataError(f"sops.{key} is not supported (trueup does not read comments)")
    given = [k for k in RULES if block.get(k)]
    if len(given) > 1:
        raise MetadataError(f"more than one encryption rule ({', '.join(given)})")
    recipients: list[str] = []
    wrapped: list[str] = []
    for entry in _age_entries(block):
        if not isinstance(entry, dict):
            raise MetadataError("a sops.age entry is not a mapping")
        recipients.append(str(entry.get("recipient", "")))
        wrapped.append(str(entry.get("enc", "")))
    mac = _text(block, "mac")
    if not mac:
        raise MetadataError("the sops metadata has no mac")
    rules = Rules(
        **{k: _text(block, k) for k in RULES},
        mac_only_encrypted=str(block.get("mac_only_encrypted", "")).lower() == "true",
    )
    if not given:
        only = rules.mac_only_encrypted
        rules = Rules(unencrypted_suffix="_unencrypted", mac_only_encrypted=only)
    return Metadata(tuple(recipients), tuple(wrapped), _lastmodified(block), mac, rules)


def data_key(metadata: Metadata, identities: Sequence[age.Identity]) -> bytes:
    """The 32-byte data key, from the first recipient one of ``identities`` opens."""
    if all(r.startswith("age1pq1") for r in metadata.recipients):
        raise MetadataError("post-quantum age recipients are not supported")
    reasons: list[str] = []
    for armored in metadata.wrapped:
        try:
            key = age.decrypt(age.dearmor(armored), identities)
        except age.AgeError as exc:
            reasons.append(str(exc))
            continue
        if len(key) != 32:
            raise MetadataError("the data key is not 32 bytes")
        return key
    shown = ", ".join(metadata.recipients) or "none"
    have = ", ".join(i.recipient for i in identities) or "none"
    unusual = sorted({r for r in reasons if "none of the host" not in r})
    detail = f" ({'; '.join(unusual)})" if unusual else ""
    raise MetadataError(
        f"none of the host's age identities (recipients: {have}) opens the data key; the file "
        f"is encrypted for {shown}{detail}"
    )
