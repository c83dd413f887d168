"""Compose projects loaded for the loader: one compose file → its apps, each with a locator.

Pure. `load_compose` calls the compose normaliser (``controller.compose.project``) with the
host's inputs (`discovery.ComposeInputs`) and hands the loader what it needs to run the
repository checks across manifests and compose projects alike: each valid app with the
function that places a manifest path (``("spec", "dependsOn", 0)``) in the compose file, its
line, and the file's problems, warnings and invalid apps. Whatever the normaliser raises
becomes a problem of that file only.

Host variables are looked up by project name (``<compose_vars_dir>/<project>.env``). The name
is only known once the file is read (``name:``, else its folder), so the folder's name is
tried first and the file is read again with the right variables when ``name:`` says another.

A committed ``.env`` that is SOPS-encrypted (by its metadata) is decrypted with the pass's
`discovery.RepoSecrets`; its variables are secret (``compose.interpolate``). One that cannot be
decrypted is a problem of the ``.env`` and every app of the project is left as it runs.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.errors import TrueupError
from controller.manifests.discovery import DOTENV, ComposeInputs, Project
from controller.manifests.problems import Problem
from controller.manifests.yamlmarks import Mark, Path

if TYPE_CHECKING:
    from controller.manifests.models import App


@dataclass(frozen=True)
class ComposeApp:
    """One service's app and where its compose file declares it."""

    app: App
    locate: Callable[[Path], Mark]
    line: int


@dataclass
class ComposeLoad:
    """What one compose file yielded."""

    project: str
    apps: list[ComposeApp] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    invalid_apps: set[str] = field(default_factory=set)


def load_compose(
    project: Project, raw: bytes, inputs: ComposeInputs, max_bytes: int
) -> ComposeLoad:
    """The apps of compose file ``project.file`` (see the module docstring); a file over
    ``max_bytes`` is not read."""
    guess = posixpath.basename(project.folder)
    why = f"file is larger than {max_bytes // 1024} KiB"
    if len(raw) > max_bytes:
        return ComposeLoad(guess, problems=[Problem(project.file, 1, 1, why)])
    if project.dotenv is not None and len(project.dotenv) > max_bytes:
        dotenv = posixpath.join(project.folder, ".env")
        return ComposeLoad(guess, problems=[Problem(dotenv, 1, 1, why)])
    try:
        loaded = _normalise(project, raw, inputs, guess)
    except Exception as exc:  # a normaliser that raised what it should not: this file only
        why = f"cannot read this compose file ({type(exc).__name__})"
        return ComposeLoad(guess, problems=[Problem(project.file, 1, 1, why)])
    return loaded


def _normalise(project: Project, raw: bytes, inputs: ComposeInputs, guess: str) -> ComposeLoad:
    from controller.compose.project import load_project

    dotenv, encrypted_dotenv, broken = _dotenv(project, inputs)

    def read(name: str) -> ComposeLoad:
        result = load_project(
            project.file,
            raw,
            dotenv=dotenv,
            variables=inputs.variables.get(name, {}),
            profiles=inputs.profiles,
            allow_repo_secrets=inputs.allow_repo_secrets,
            secret_dotenv=encrypted_dotenv,
            encrypted=inputs.sops.is_encrypted if inputs.sops is not None else None,
        )
        return ComposeLoad(
            result.project,
            [ComposeApp(a.app, a.locate, a.line) for a in result.apps],
            list(result.problems),
            list(result.warnings),
            set(result.invalid_apps),
        )

    loaded = read(guess)
    named = loaded.project
    if named != guess and {guess, named} & (set(inputs.variables) | set(inputs.errors)):
        loaded = read(named)
    if broken is not None:  # the .env cannot be decrypted: leave the apps as they run
        loaded.invalid_apps |= {a.app.name for a in loaded.apps}
        loaded.problems = [broken]
        loaded.apps = []
    if named in inputs.errors:  # the host's variables are unknown: leave the apps as they run
        why = f"project {named}: host variables file: {inputs.errors[named]}"
        loaded.invalid_apps |= {a.app.name for a in loaded.apps}
        loaded.problems.append(Problem(project.file, 1, 1, why))
        loaded.apps = []
    return loaded


def _dotenv(project: Project, inputs: ComposeInputs) -> tuple[bytes | None, str, Problem | None]:
    """The ``.env`` to interpolate with (decrypted when SOPS), its path when it was encrypted
    (else ""), and the problem of one that cannot be decrypted."""
    from controller.sops import looks_encrypted

    if project.dotenv is None or not looks_encrypted(project.dotenv):
        return project.dotenv, "", None
    path = posixpath.join(project.folder, DOTENV)
    if inputs.sops is None:
        why = "is SOPS-encrypted, and no SOPS identities are given (sops_age_key_file)"
        return None, path, Problem(path, 1, 1, why)
    try:
        return inputs.sops.plaintext(path), path, None
    except TrueupError as exc:
        return None, path, Problem(path, 1, 1, _without_file(str(exc), path))


def _without_file(message: str, path: str) -> str:
    """A located error's message without the file name it starts with (the problem has it)."""
    return message.removeprefix(f"{path}: ")
