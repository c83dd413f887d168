"""SOPS-encrypted files of the repository, decrypted in memory with the host's age identities.

The one entry point is `decrypt_file`: give it a file's bytes, its repository path (for the
errors and the binary/JSON choice) and the host's `Identities`; it returns a `Decrypted` (the
plaintext in the file's own format, its values by key) or raises a `SopsError` naming the file
and why: malformed, tampered with (MAC or a value does not verify), for recipients the host
has no identity of, or a kind trueup does not support (several key groups / Shamir, PGP or KMS
only, post-quantum or plugin age recipients, comment regexes). `looks_encrypted` is the cheap
test a caller makes first: any file with an ``ENC[AES256_GCM,`` value is taken for a SOPS file
(and refused when its metadata is missing, so a stripped ``sops`` block never mounts ciphertext).

Nothing here writes, caches or logs a value; no sops binary is used. Modules: `decrypt` (the
entry points, imported on first use so a pass that decrypts nothing loads neither YAML nor
``cryptography``), `bech32`, `age` (the age format, X25519), `values` (``ENC[...]`` values),
`tree` (the walk and the MAC), `metadata` (the sops block, refusals, the data key), `formats`
(YAML, JSON, dotenv, binary), `identities` (key files on the host), `repo` (one pass's SOPS
files), `check` (`trueup validate`'s look at them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controller.errors import SopsError
from controller.sops.values import MARKER

if TYPE_CHECKING:
    from controller.sops.decrypt import Decrypted, decrypt_file, inspect_file
    from controller.sops.identities import Identities, load_identities

__all__ = [
    "MAX_SOPS_FILE_BYTES",
    "Decrypted",
    "Identities",
    "SopsError",
    "decrypt_file",
    "inspect_file",
    "load_identities",
    "looks_encrypted",
]

MAX_SOPS_FILE_BYTES = 16 * 1024 * 1024
_LAZY = {
    "Decrypted": "controller.sops.decrypt",
    "decrypt_file": "controller.sops.decrypt",
    "inspect_file": "controller.sops.decrypt",
    "Identities": "controller.sops.identities",
    "load_identities": "controller.sops.identities",
}


def __getattr__(name: str) -> Any:
    """The decryptor's names, imported on first use (see the module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


def looks_encrypted(raw: bytes) -> bool:
    """True when ``raw`` holds a SOPS value (``ENC[AES256_GCM,``): handle it with
    `decrypt_file`, never as a plain file."""
    return MARKER.encode() in raw
