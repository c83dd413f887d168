"""What translating one service needs to know about its project, and what it yields: the
manifest data (camelCase, as a trueup manifest would say it) and, for each manifest path it
wrote, the compose path it came from (so a problem found later points into the compose file).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.compose.located import Report
from controller.manifests.yamlmarks import Path


@dataclass(frozen=True)
class FileSource:
    """A top-level ``secrets``/``configs`` entry: a repo file, or inline ``content``."""

    path: Path
    file: str | None = None
    content: str | None = None
    encrypted: bool = False
    """The file is SOPS-encrypted (by its metadata): a secret then comes from it."""


@dataclass
class Project:
    """The project-wide facts a service's translation reads."""

    name: str
    folder: str
    """The compose file's folder, relative to the deployment root ("" at the top)."""
    report: Report
    services: Mapping[str, Any]
    volumes: Mapping[str, str]
    """Top-level volume key → engine volume name."""
    networks: Mapping[str, str]
    """Top-level network key → trueup app network name."""
    secrets: Mapping[str, FileSource]
    configs: Mapping[str, FileSource]
    variables: Mapping[str, str]
    allow_repo_secrets: bool = False
    secret_variables: Mapping[str, str] = field(default_factory=dict)
    """Variables of an encrypted ``.env`` → that file: their values never enter the spec."""
    secret_env: Mapping[Path, tuple[str, str]] = field(default_factory=dict)
    """``services.<s>.environment.<NAME>`` whose whole value is a secret variable → (file, key)."""
    encrypted: Callable[[str], bool] | None = None
    """Whether a repository file is SOPS-encrypted (None: no SOPS files are known)."""

    def app_name(self, service: str) -> str:
        return f"{self.name}-{service}"

    def repo_path(self, path: Path, relative: str, what: str) -> str | None:
        """``relative`` (to the compose file's folder) as a path of the repository; an error
        when it is absolute or climbs above the repository's root."""
        if relative.startswith("/"):
            self.report.error(path, f"{what} {relative!r} must be relative to the compose file")
            return None
        joined = posixpath.normpath(posixpath.join(self.folder or ".", relative))
        if joined == ".." or joined.startswith("../"):
            self.report.error(path, f"{what} {relative!r} leaves the repository")
            return None
        return joined


@dataclass
class Translation:
    """One service translated: manifest ``spec`` data and where each part came from."""

    service: str
    spec: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    origins: dict[Path, Path] = field(default_factory=dict)
    healthy_deps: dict[str, Path] = field(default_factory=dict)
    mirrors: dict[Path, Path] = field(default_factory=dict)
    """Manifest prefixes written as they are (``x-trueup``): the rest of a path carries over."""

    def put(self, key: str, value: Any, origin: Path) -> None:
        self.spec[key] = value
        self.origins[("spec", key)] = origin

    def origin(self, path: Path, source: Path) -> None:
        self.origins[path] = source

    def compose_path(self, path: Path) -> Path:
        """The compose path a manifest path came from (its longest recorded prefix)."""
        for n in range(len(path), 0, -1):
            mirror = self.mirrors.get(path[:n])
            if mirror is not None:
                return (*mirror, *path[n:])
            found = self.origins.get(path[:n])
            if found is not None:
                return found
        return ("services", self.service)
