"""Project scope: the project's name, the engine names of its volumes, the trueup names of
its networks, its declared secrets and configs, and each service's network memberships.

Compose names a project's volume ``<project>_<key>``; trueup keeps that name so data made by
``docker compose up`` is found. Networks become trueup app networks ``<project>-<key>`` (the
implicit one ``<project>-default``), so two projects never share a network by accident, and
each service answers there to its service name.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Callable
from typing import Any

from controller.compose import keys
from controller.compose.context import FileSource, Project, Translation
from controller.compose.located import Report
from controller.manifests.yamlmarks import Path

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ENGINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_dns_label(name: str) -> bool:
    return bool(_DNS_LABEL.match(name))


def normalise_name(name: str) -> str:
    """As Compose normalises a project name: lower case, only ``a-z0-9_-`` kept."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def project_name(report: Report, file: str, data: dict[str, Any]) -> str | None:
    """From ``name:``, else the compose file's folder; a located error when neither names it."""
    if "name" in data:
        given = report.text(("name",), data["name"], numbers=False)
        if given is None:
            return None
        name = normalise_name(given)
        where: Path = ("name",)
    else:
        folder = posixpath.basename(posixpath.dirname(posixpath.normpath(file)))
        if not folder or folder == ".":
            report.at(
                report.mark(()),
                "a compose file at the top of the deployment has no folder to name its "
                "project after: give it a top-level name:",
            )
            return None
        name, where = normalise_name(folder), ()
    what = f"project name {name!r}" if where else f"project name {name!r} (from its folder)"
    if not name or not name[0].isalnum():
        report.error(where, f"{what} is not valid (a-z, 0-9, '_', '-'): set name:")
        return None
    if not is_dns_label(name) or len(name) > 61:
        report.error(
            where,
            f"{what} cannot begin app names (<project>-<service>, DNS labels: a-z, 0-9 and "
            "'-', at most 63 characters): set name:, e.g. "
            f"{re.sub('[^a-z0-9-]+', '-', name).strip('-')[:40] or 'app'!r}",
        )
        return None
    return name


def top_volumes(report: Report, project: str, value: object) -> dict[str, str]:
    """Volume key → engine name: ``<project>_<key>``; ``name:`` or ``external: true`` as given."""
    found: dict[str, str] = {}
    if value is None:
        return found
    if not isinstance(value, dict):
        report.error(("volumes",), "must be a mapping of volume names")
        return found
    for key, spec in value.items():
        at: Path = ("volumes", str(key))
        before = len(report.problems)
        data = report.mapping(
            at,
            spec if spec is not None else {},
            keys.TOP_VOLUME,
            keys.TOP_VOLUME_UNSUPPORTED,
            extensions=True,
        )
        if data is None:
            continue
        external = (
            report.boolean((*at, "external"), data["external"]) if "external" in data else False
        )
        if external is None:
            continue
        explicit = data.get("name")
        engine = (
            str(explicit)
            if explicit is not None
            else (str(key) if external else f"{project}_{key}")
        )
        if not _ENGINE_NAME.match(engine) or engine.startswith("trueup-"):
            report.error(
                (*at, "name") if explicit is not None else at,
                f"{engine!r} is not a volume name trueup may use (a-z, 0-9, '_', '.', '-'; "
                "never trueup-*, the names of trueup's own volumes)",
            )
            continue
        if not report.broken_since(before, "volumes", str(key)):
            found[str(key)] = engine
    return found


def top_networks(report: Report, project: str, value: object) -> dict[str, str]:
    """Network key → trueup app network name ``<project>-<key>`` (with ``default``)."""
    found = {"default": f"{project}-default"}
    if value is None:
        return found
    if not isinstance(value, dict):
        report.error(("networks",), "must be a mapping of network names")
        return found
    for key, spec in value.items():
        at: Path = ("networks", str(key))
        before = len(report.problems)
        data = report.mapping(
            at,
            spec if spec is not None else {},
            frozenset({"external"}),
            keys.TOP_NETWORK_UNSUPPORTED | keys.TOP_NETWORK,
            extensions=True,
        )
        if data is None:
            continue
        if "external" in data:
            external = report.boolean((*at, "external"), data["external"])
            if external:
                report.error((*at, "external"), "external networks are not supported by trueup")
            if external is not False:
                continue
        name = f"{project}-{key}"
        if not is_dns_label(name):
            report.error(
                at,
                f"network name {name!r} (<project>-<network>) is not a DNS label: use a-z, 0-9 "
                "and '-', at most 63 characters",
                key=True,
            )
            continue
        if not report.broken_since(before, "networks", str(key)):
            found[str(key)] = name
    return found


def top_files(
    report: Report,
    kind: str,
    value: object,
    allow_repo: bool,
    encrypted: Callable[[str], bool] | None = None,
    folder: str = "",
) -> dict[str, FileSource]:
    """Top-level ``secrets`` or ``configs``: name → its ``file`` (or a config's ``content``).
    A secret file that ``encrypted`` says is a SOPS file is read from the repository."""
    found: dict[str, FileSource] = {}
    if value is None:
        return found
    if not isinstance(value, dict):
        report.error((kind,), f"must be a mapping of {kind}")
        return found
    known, unsupported = (
        (keys.TOP_SECRET, keys.TOP_SECRET_UNSUPPORTED)
        if kind == "secrets"
        else (keys.TOP_CONFIG, keys.TOP_CONFIG_UNSUPPORTED)
    )
    for key, spec in value.items():
        at: Path = (kind, str(key))
        before = len(report.problems)
        source = _file_source(report, at, spec, known, unsupported)
        if source is not None and not report.broken_since(before, kind, str(key)):
            if kind == "secrets" and source.file is not None and encrypted is not None:
                repo = posixpath.normpath(posixpath.join(folder, source.file))
                source = dataclasses.replace(source, encrypted=encrypted(repo))
            found[str(key)] = source
            secret_file = kind == "secrets" and source.file is not None
            if secret_file and not allow_repo and not source.encrypted:
                report.warn(
                    (*at, "file"),
                    f"not read from the repository: the secret comes from the host's secrets "
                    f"dir, file {key!r} (the controller's config may allow committed secret "
                    "files)",
                )
        elif source is None:
            report.broken.add((kind, str(key)))
    return found


def service_networks(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    """The app networks of one service: those it lists (default: ``default``), each with the
    service name as an alias (plus the aliases it gives)."""
    report = project.report
    if "network_mode" in data:  # host, none, or bridge: the instance network, as in a manifest
        if "networks" in data:
            report.error((*at, "networks"), "networks cannot be used with network_mode")
        return
    value = data.get("networks", ["default"])
    where = (*at, "networks")
    entries: dict[str, tuple[Path, list[str]]] = {}
    if isinstance(value, list):
        for i, item in enumerate(value):
            name = report.text((*where, i), item, numbers=False)
            if name is not None:
                entries[name] = ((*where, i), [])
    elif isinstance(value, dict):
        for key, spec in value.items():
            child = (*where, str(key))
            found = report.mapping(
                child,
                spec if spec is not None else {},
                keys.SERVICE_NETWORK,
                keys.SERVICE_NETWORK_UNSUPPORTED,
            )
            aliases = (
                report.strings((*child, "aliases"), found["aliases"])
                if found and "aliases" in found
                else []
            )
            entries[str(key)] = (child, aliases or [])
    else:
        report.error(where, "must be a list or a mapping of networks")
        return
    networks: list[dict[str, Any]] = []
    for name, (path, aliases) in entries.items():
        if name not in project.networks:
            report.error(path, report.undeclared("networks", name))
            continue
        out.origin(("spec", "networks", len(networks)), path)
        names = [out.service] + [a for a in aliases if a != out.service]
        networks.append({"name": project.networks[name], "aliases": names})
    if networks:
        out.put("networks", networks, where)


def _file_source(
    report: Report, at: Path, spec: object, known: frozenset[str], unsupported: frozenset[str]
) -> FileSource | None:
    data = report.mapping(at, spec, known, unsupported, extensions=True)
    if data is None:
        return None
    given = [k for k in ("file", "content") if k in data]
    if not given and isinstance(spec, dict) and set(spec) & unsupported:
        return None  # reported as not supported already
    if len(given) != 1:
        report.error(at, f"give exactly one of {' or '.join(sorted(known))}", key=True)
        return None
    text = report.text((*at, given[0]), data[given[0]])
    if text is None:
        return None
    if given[0] == "content":
        return FileSource(at, content=text)
    return FileSource(at, file=text)
