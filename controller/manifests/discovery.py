"""Which of the files under ``--path`` are trueup manifests, compose projects, or data.

Pure: given the files the source collected (``source.tree.collect_manifests``: every YAML
file, and the ``.env`` beside each compose file), `classify` sorts them:

* a file named ``compose.yaml``, ``compose.yml``, ``docker-compose.yml`` or
  ``docker-compose.yaml`` is a compose project (one per file, with the ``.env`` of its folder).
  Two of them in one folder: the first of that order is the project, as with ``docker
  compose``; the others are skipped.
* the folder of a compose file is that project's folder: every other YAML file in it **and in
  its subfolders** is data the project may mount (a ``prometheus.yml``, a Grafana datasource),
  never a trueup manifest. A subfolder that holds a compose file of its own is that project's
  folder instead (the nearest compose file wins).
* every other ``*.yaml``/``*.yml`` is a trueup manifest.

Files a ``files`` source names are taken out later, by the loader, once the apps (hence
their sources) are known. `ComposeInputs` is what the controller's host adds to a compose
project: its variables files, the active profiles, whether committed secret files count, and
the pass's SOPS files (`RepoSecrets`: a committed ``.env`` or a ``secrets:`` file that is
SOPS-encrypted is decrypted with the host's identities).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
DOTENV = ".env"


class RepoSecrets(Protocol):
    """The pass's SOPS files of the repository (`controller.sops.repo.RepoSops`)."""

    def is_encrypted(self, file: str) -> bool:
        """True when the repository file ``file`` is a SOPS file (by its metadata)."""
        ...

    def plaintext(self, file: str) -> bytes:
        """``file`` decrypted when it is SOPS (a located ``SopsError`` when it cannot be)."""
        ...


@dataclass(frozen=True)
class ComposeInputs:
    """What the controller's host gives compose projects (settings ``compose_*``)."""

    variables: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    """Each project's host variables (``<compose_vars_dir>/<project>.env``), by project name."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """Projects whose host variables file could not be read, and why."""
    profiles: frozenset[str] = frozenset()
    allow_repo_secrets: bool = False
    sops: RepoSecrets | None = field(default=None, compare=False, repr=False)
    """The pass's SOPS files (None: none is decrypted; an encrypted ``.env`` is a problem).
    Not part of the digest: what a file decrypts to is covered by the tree id (``.env``) or
    by the spec's keyed digests (secret files)."""

    def digest(self, key: bytes = b"") -> str:
        """Covers everything here, so a changed host variable parses (and plans) again; ""
        for no inputs at all (so caches made before compose projects stay valid). Keyed by
        ``key`` (the instance's secret digest key), as host variables may hold secrets and
        the desired-state cache's key is derived from this."""
        if self == ComposeInputs():
            return ""
        material = json.dumps(
            {
                "variables": {p: dict(sorted(v.items())) for p, v in self.variables.items()},
                "errors": dict(self.errors),
                "profiles": sorted(self.profiles),
                "repo_secrets": self.allow_repo_secrets,
            },
            sort_keys=True,
        )
        return hmac.new(key or b"trueup-compose", material.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Project:
    """One compose file, the ``.env`` beside it (None: there is none) and its folder."""

    file: str
    folder: str
    dotenv: bytes | None = field(default=None, repr=False)


@dataclass
class Layout:
    """The files under ``--path``, sorted by what they are."""

    manifests: dict[str, bytes] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    """A data file → the compose file of the project it belongs to."""
    shadowed: dict[str, str] = field(default_factory=dict)
    """A second compose file of a folder → the compose file used there."""


def is_compose_file(name: str) -> bool:
    return posixpath.basename(name) in COMPOSE_FILE_NAMES


def classify(files: Mapping[str, bytes]) -> Layout:
    """Sort ``files`` (see the module docstring)."""
    layout = Layout()
    by_folder: dict[str, str] = {}
    composes = [n for n in files if is_compose_file(n)]
    for name in sorted(composes, key=lambda n: COMPOSE_FILE_NAMES.index(posixpath.basename(n))):
        folder = posixpath.dirname(name)
        if folder in by_folder:
            layout.shadowed[name] = by_folder[folder]
            continue
        by_folder[folder] = name
        layout.projects[name] = Project(name, folder, files.get(posixpath.join(folder, DOTENV)))
    for name in sorted(files):
        if is_compose_file(name) or posixpath.basename(name) == DOTENV:
            continue
        owner = _owning_project(posixpath.dirname(name), by_folder)
        if owner is None:
            layout.manifests[name] = files[name]
        else:
            layout.data[name] = owner
    return layout


def _owning_project(folder: str, by_folder: Mapping[str, str]) -> str | None:
    """The compose file of the nearest folder at or above ``folder`` that holds one."""
    while True:
        if folder in by_folder:
            return by_folder[folder]
        if not folder:
            return None
        folder = posixpath.dirname(folder)
