"""`trueup validate`'s look at the SOPS files the apps use: each decrypts with the host's
identities (or, without any identity given, is at least a SOPS file trueup supports), and each
secretRef's key is in it; values are never printed.

The files an app uses: every ``secretRef.file`` (env and ``files``) and every ``files`` source
that is a single SOPS-encrypted file, and every ``envFrom`` file (a compose ``env_file``) that
is one. Each problem is located at the app's manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.errors import SourceError, TrueupError
from controller.manifests.problems import Problem
from controller.sops import inspect_file, looks_encrypted
from controller.sops.repo import RepoSops

if TYPE_CHECKING:
    from controller.manifests.loader import LoadResult
    from controller.manifests.models import App


@dataclass
class SopsCheck:
    """What validate found: problems, the SOPS files looked at, whether they were decrypted."""

    problems: list[Problem] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    decrypted: bool = False

    def summary(self) -> str | None:
        """One line for stderr (None when no app uses a SOPS file)."""
        if not self.files:
            return None
        if self.decrypted:
            return f"{len(self.files)} SOPS file(s) decrypted with the host's age identities"
        return (
            f"{len(self.files)} SOPS file(s) checked without decrypting them "
            "(give --sops-age-key-file to decrypt)"
        )


def uses(app: App) -> list[tuple[str, str, str | None]]:
    """``(field, file, key)`` of every SOPS file ``app`` may read; key None for a source."""
    out: list[tuple[str, str, str | None]] = []
    for var, ref in sorted(app.spec.secret_refs().items()):
        if ref.file is not None:
            out.append((f"spec.env.{var}", ref.file, ref.key))
    for i, entry in enumerate(app.spec.files):
        if entry.secret_ref is not None and entry.secret_ref.file is not None:
            out.append((f"spec.files[{i}]", entry.secret_ref.file, entry.secret_ref.key))
        elif entry.source is not None:
            out.append((f"spec.files[{i}].source", entry.source, None))
    for i, env_from in enumerate(app.spec.env_from):
        out.append((f"spec.envFrom[{i}].file", env_from.file, None))
    return out


def check_sops(loaded: LoadResult, read: Callable[[str], bytes], sops: RepoSops) -> SopsCheck:
    """Every SOPS file the valid apps of ``loaded`` use, checked (decrypted when ``sops``
    has identity files)."""
    result = SopsCheck(decrypted=bool(sops.identities.files))
    for name, item in sorted(loaded.apps.items()):
        for where, file, key in uses(item.app):
            try:
                message = _check_one(result, read, sops, file, key)
            except TrueupError as exc:
                message = str(exc)
            if message is not None:
                result.problems.append(
                    Problem(item.file, item.line, 1, f"app {name}: {where}: {message}")
                )
    return result


def _check_one(
    result: SopsCheck, read: Callable[[str], bytes], sops: RepoSops, file: str, key: str | None
) -> str | None:
    try:
        raw = read(file)
    except SourceError:
        if key is None:
            return None  # a folder or missing source: the files check says so, not this one
        raise
    if not looks_encrypted(raw):
        return None if key is None else f"{file}: is not SOPS-encrypted (a secret in git must be)"
    result.files.add(file)
    if not result.decrypted:
        inspect_file(raw, file=file)
        return None
    decrypted = sops.decrypted(file)
    if key is not None:
        decrypted.value(key)
    return None
