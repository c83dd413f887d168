"""The controller host's side of compose projects: variables files, profiles, repo secrets.

A compose file's ``${VAR}`` takes its value from the committed ``.env`` beside it and from the
host's variables file of its project, ``<compose_vars_dir>/<project>.env`` (``KEY=VALUE``
lines; the host's file wins), never from the controller's own environment. The reconciler
calls `ComposeHost.inputs` on every pass (this module reads files: it is an edge) and gives
the result to the loader; its digest is part of the parse and desired-state cache keys, so a
changed host variable parses and plans again. A variables file that cannot be read (not
UTF-8, not ``KEY=VALUE``, unreadable, over 256 KiB) fails the apps of that project alone,
which keep running as they are. So does one that is SOPS-encrypted (by its ``ENC[`` values):
its variables would reach the spec (labels) in plaintext, so it is refused rather than
decrypted; a secret belongs in the repository's encrypted ``.env`` or ``env_file``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.desired.envfiles import parse_env_file
from controller.errors import SourceError
from controller.manifests.discovery import ComposeInputs
from controller.sops import looks_encrypted

_ENCRYPTED = (
    "is SOPS-encrypted: a host variables file is read as plaintext (its values may reach the "
    "spec and labels); put secrets in the repository's encrypted .env or env_file instead"
)


@dataclass(frozen=True)
class ComposeHost:
    """The ``compose_*`` settings of the controller."""

    profiles: frozenset[str] = frozenset()
    """Active compose profiles: a service with ``profiles:`` runs only when one is active."""
    vars_dir: Path | None = None
    """Folder of ``<project>.env`` variables files (None: no host variables)."""
    repo_secrets: bool = False
    """Let a compose ``secrets: {file: ./x}`` read the committed file (default: the host's
    secrets dir, under the secret's name)."""

    def inputs(self) -> ComposeInputs:
        """The host's inputs as they are now (the variables files read again)."""
        variables, errors = read_variables(self.vars_dir)
        return ComposeInputs(variables, errors, self.profiles, self.repo_secrets)


def read_variables(directory: Path | None) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Every ``<project>.env`` of ``directory`` (missing or None: none), and the projects
    whose file could not be read, with why."""
    values: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    if directory is None or not directory.is_dir():
        return values, errors
    for path in sorted(directory.glob("*.env")):
        if not path.is_file():
            continue
        try:
            raw = path.read_bytes()
            if looks_encrypted(raw):
                errors[path.stem] = f"{path}: {_ENCRYPTED}"
                continue
            values[path.stem] = dict(parse_env_file(str(path), raw).values)
        except SourceError as exc:
            errors[path.stem] = str(exc)
        except OSError as exc:
            errors[path.stem] = f"cannot read {path}: {exc.strerror or exc}"
    return values, errors
