"""A service's mounts: ``volumes`` (named → volumes, relative repo paths → read-only
``files``, absolute host paths → ``binds``, anonymous → dropped with a warning), ``secrets``
(→ secret files at ``/run/secrets/<name>``) and ``configs`` (→ ``files``).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from controller.compose import keys
from controller.compose.context import FileSource, Project, Translation
from controller.manifests.yamlmarks import Path

_SHORT_MODES = frozenset({"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated"})
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def volume_label(key: str) -> str:
    """A DNS-label form of a compose volume key (``db_data`` → ``db-data``) for
    ``VolumeMount.name``; the engine name (``volumeName``) keeps the key as it is."""
    label = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:63].strip("-")
    return label or "volume"


def translate_mounts(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    """``volumes``, ``secrets`` and ``configs`` of one service into ``out``."""
    volumes: list[dict[str, Any]] = []
    binds: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    items = data.get("volumes", [])
    if not isinstance(items, list):
        project.report.error((*at, "volumes"), "must be a list")
        items = []
    for i, item in enumerate(items):
        where = (*at, "volumes", i)
        mount = _volume_entry(project, where, item)
        if mount is None:
            continue
        kind, entry = mount
        target = {"volume": volumes, "bind": binds, "file": files}[kind]
        field = {"volume": "volumes", "bind": "binds", "file": "files"}[kind]
        out.origin(("spec", field, len(target)), where)
        target.append(entry)
    for key, sources, default_dir in (
        ("secrets", project.secrets, "/run/secrets"),
        ("configs", project.configs, ""),
    ):
        if key in data:
            for where, entry in _file_refs(project, (*at, key), data[key], sources, default_dir):
                out.origin(("spec", "files", len(files)), where)
                files.append(entry)
    for field, found in (("volumes", volumes), ("binds", binds), ("files", files)):
        if found:
            out.spec[field] = found


def _volume_entry(project: Project, at: Path, item: object) -> tuple[str, dict[str, Any]] | None:
    report = project.report
    if isinstance(item, str):
        parsed = _short_volume(project, at, item)
        if parsed is None:
            return None
        kind, source, target, read_only = parsed
    else:
        data = report.mapping(at, item, keys.VOLUME, keys.VOLUME_UNSUPPORTED)
        if data is None:
            return None
        for sub, known, unsupported in (
            ("bind", keys.VOLUME_BIND, keys.VOLUME_BIND_UNSUPPORTED),
            ("volume", keys.VOLUME_VOLUME, keys.VOLUME_VOLUME_UNSUPPORTED),
        ):
            if sub in data:
                report.mapping((*at, sub), data[sub], known, unsupported)
        if "type" not in data:
            report.error(at, "type (volume or bind) is missing", key=True)
            return None
        kind = str(data["type"])
        if kind not in ("volume", "bind"):
            report.error(
                (*at, "type"), f"{kind!r} mounts are not supported by trueup (volume, bind)"
            )
            return None
        source = report.text((*at, "source"), data["source"]) if data.get("source") else None
        given = report.text((*at, "target"), data.get("target"))
        flag = (
            report.boolean((*at, "read_only"), data["read_only"]) if "read_only" in data else False
        )
        read_only = flag is True
        if given is None:
            return None
        target = given
        if kind == "bind" and source is None:
            report.error(at, "a bind mount needs a source", key=True)
            return None
    return _mount(project, at, kind, source, target, read_only)


def _short_volume(
    project: Project, at: Path, text: str
) -> tuple[str, str | None, str, bool] | None:
    parts = text.split(":")
    mode = ""
    if len(parts) == 3 or (
        len(parts) == 2
        and parts[1]
        and set(parts[1].split(",")) <= _SHORT_MODES
        and not parts[1].startswith("/")
    ):
        mode = parts.pop()
    if len(parts) > 2 or not parts[-1]:
        project.report.error(at, f"{text!r} is not SOURCE:TARGET[:MODE] or TARGET")
        return None
    flags = set(mode.split(",")) if mode else set()
    if flags - _SHORT_MODES:
        project.report.error(at, f"{mode!r} is not a mount mode (ro, rw)")
        return None
    source = parts[0] if len(parts) == 2 else None
    kind = "bind" if source is not None and source[:1] in (".", "/", "~") else "volume"
    return kind, source, parts[-1], "ro" in flags


def _mount(
    project: Project, at: Path, kind: str, source: str | None, target: str, read_only: bool
) -> tuple[str, dict[str, Any]] | None:
    report = project.report
    if not target.startswith("/"):
        report.error(at, f"the mount target {target!r} must be an absolute path in the container")
        return None
    if kind == "volume":
        if source is None:
            report.warn(
                at,
                "anonymous volume dropped: trueup keeps no data it cannot name; use a named volume",
            )
            return None
        if source not in project.volumes:
            report.error(at, report.undeclared("volumes", source))
            return None
        entry = {
            "name": volume_label(source),
            "volumeName": project.volumes[source],
            "mountPath": target,
        }
        return "volume", ({**entry, "readOnly": True} if read_only else entry)
    assert source is not None
    if source.startswith("~"):
        report.error(
            at, f"{source!r}: a path in a home folder is not supported; give an absolute host path"
        )
        return None
    if source.startswith("/"):
        entry = {"hostPath": source, "mountPath": target}
        return "bind", ({**entry, "readOnly": True} if read_only else entry)
    repo = project.repo_path(at, source, "bind source")
    if repo is None:
        return None
    if repo == project.folder or repo == ".":
        report.error(
            at, f"{source!r} is the project's own folder; mount the files it needs one by one"
        )
        return None
    if not read_only:
        report.error(
            at,
            f"{source!r} is a path of the repository, which trueup puts in read-only: add ':ro' "
            "if the service only reads it, or use a named volume for data it writes",
        )
        return None
    return "file", {"path": target, "source": repo}


def _file_refs(
    project: Project,
    at: Path,
    value: object,
    sources: dict[str, FileSource] | Any,
    default_dir: str,
) -> list[tuple[Path, dict[str, Any]]]:
    report = project.report
    if not isinstance(value, list):
        report.error(at, "must be a list")
        return []
    what = "secret" if default_dir else "config"
    found: list[tuple[Path, dict[str, Any]]] = []
    for i, item in enumerate(value):
        where = (*at, i)
        data = (
            {"source": item}
            if isinstance(item, str)
            else report.mapping(where, item, keys.FILE_REF)
        )
        if data is None:
            continue
        name = report.text((*where, "source"), data.get("source"), numbers=False)
        if name is None:
            continue
        if name not in sources:
            report.error(where, report.undeclared(f"{what}s", name))
            continue
        target = str(data.get("target", name))
        if not target.startswith("/"):
            target = posixpath.join(default_dir or "/", target)
        entry = _file_entry(project, where, what, name, sources[name])
        if entry is None:
            continue
        entry["path"] = target
        owner = _owner(project, where, data)
        if owner is not None:
            entry["owner"] = owner
        if "mode" in data:
            mode = data["mode"]
            entry["mode"] = (
                f"{mode:04o}" if isinstance(mode, int) and not isinstance(mode, bool) else mode
            )
        elif "secretFile" in entry or sources[name].encrypted:
            entry["mode"] = "0444"  # Compose's default for a secret (trueup's own is 0400)
        found.append((where, entry))
    return found


def _file_entry(
    project: Project, at: Path, what: str, name: str, source: FileSource
) -> dict[str, Any] | None:
    if source.content is not None:
        return {"content": source.content}
    assert source.file is not None
    repo = project.repo_path((*source.path, "file"), source.file, f"{what} file")
    if repo is None:
        return None
    if what == "config" or project.allow_repo_secrets or source.encrypted:
        return {"source": repo}  # a SOPS source is decrypted as a secret file (desired.files)
    if not _SECRET_NAME.match(name):
        project.report.error(
            at, f"secret name {name!r} cannot name a file in the host's secrets dir"
        )
        return None
    return {"secretFile": name}


def _owner(project: Project, at: Path, data: dict[str, Any]) -> str | None:
    uid, gid = data.get("uid"), data.get("gid")
    if uid is None and gid is None:
        return None
    for key, value in (("uid", uid), ("gid", gid)):
        if value is not None and not str(value).isdigit():
            project.report.error((*at, key), "must be a numeric id")
            return None
    return f"{uid or 0}:{gid if gid is not None else uid or 0}"
