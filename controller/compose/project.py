"""The entry point: one compose file (with its committed ``.env`` and the host's variables) →
the ``App`` of each service, every problem located in the compose file.

Stages: parse with positions (``manifests.yamlmarks``: the same bounds on hostile YAML as
manifests), interpolate (``compose.interpolate``), check the top level and the project's scope
(``compose.scope``), translate each service (``compose.translate``, ``compose.mounts``), then
validate each with the manifest's own ``App`` model, so an ``x-trueup`` error reads as it would
in a manifest. A broken service fails only itself where possible; any error fails the file
(the loader suspends pruning). ``load_project`` never raises for its input.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from controller.compose import keys
from controller.compose.context import Project, Translation
from controller.compose.dependencies import check_dependencies
from controller.compose.errors import describe
from controller.compose.interpolate import Interpolator, interpolate, parse_dotenv
from controller.compose.located import Report, dotted
from controller.compose.scope import project_name, top_files, top_networks, top_volumes
from controller.compose.services import build_app
from controller.manifests.models import App
from controller.manifests.problems import Problem
from controller.manifests.yamlmarks import DocumentError, Mark, Path, documents

COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
MAX_FILE_BYTES = 1024 * 1024
_CONTAINER = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass(frozen=True)
class ProjectApp:
    """One service as a trueup app, and where it stands in the compose file."""

    app: App
    service: str
    line: int
    locate: Callable[[Path], Mark]
    """Manifest path → place in the compose file (``("spec", "routes", 0, "host")`` → the
    x-trueup route; a field compose does not have → the service)."""


@dataclass
class ProjectResult:
    """What one compose file yielded."""

    project: str
    apps: list[ProjectApp] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    invalid_apps: set[str] = field(default_factory=set)
    """App names of services that failed: they must be left running as they are."""


def load_project(
    file: str,
    raw: bytes,
    *,
    dotenv: bytes | None,
    variables: Mapping[str, str],
    profiles: frozenset[str] = frozenset(),
    allow_repo_secrets: bool = False,
    secret_dotenv: str = "",
    encrypted: Callable[[str], bool] | None = None,
) -> ProjectResult:
    """Every service of the compose file ``file`` as an app; never raises for its input.

    ``secret_dotenv`` names the ``.env`` when it was SOPS-encrypted (``dotenv`` is then its
    plaintext): its variables are secret (see ``compose.interpolate``). ``encrypted`` tells
    whether a repository file is a SOPS file (a committed secret that is one is used without
    ``allow_repo_secrets``)."""
    report = Report(file)
    result = ProjectResult(project="")
    host = _Host(profiles, allow_repo_secrets, secret_dotenv, encrypted)
    try:
        _load(file, raw, dotenv, variables, host, report, result)
    except Exception as exc:  # a bug must cost this file only, never the pass
        report.at(Mark(1, 1), f"cannot read this compose file ({type(exc).__name__})")
        result.apps = []
    result.problems = sorted(report.problems)
    result.warnings = sorted(report.warnings)
    return result


@dataclass(frozen=True)
class _Host:
    """What the host says about one compose file (see `load_project`)."""

    profiles: frozenset[str]
    allow_repo_secrets: bool
    secret_dotenv: str
    encrypted: Callable[[str], bool] | None


def _load(
    file: str,
    raw: bytes,
    dotenv: bytes | None,
    variables: Mapping[str, str],
    host: _Host,
    report: Report,
    result: ProjectResult,
) -> None:
    parsed = _parse(report, raw)
    if parsed is None:
        return
    folder = posixpath.dirname(posixpath.normpath(file))
    data, interpolator = _interpolated(report, folder, parsed, dotenv, variables, host)
    top = report.mapping(
        (),
        data,
        keys.TOP_LEVEL,
        keys.TOP_LEVEL_UNSUPPORTED,
        keys.TOP_LEVEL_IGNORED,
        extensions=True,
    )
    if top is None:
        return
    if isinstance(data, dict) and "version" in data:  # ignored, but still a string
        report.text(("version",), data["version"], numbers=False)
    name = project_name(report, file, top)
    services = top.get("services")
    if not isinstance(services, dict) or not services:
        if "services" in top:
            report.error(("services",), "must be a mapping of services", key=True)
        else:
            report.at(report.mark(()), "a compose file needs services:")
        return
    if name is None:
        return
    result.project = name
    project = Project(
        name=name,
        folder="" if folder in ("", ".") else folder,
        report=report,
        services=services,
        volumes=top_volumes(report, name, top.get("volumes")),
        networks=top_networks(report, name, top.get("networks")),
        secrets=top_files(
            report, "secrets", top.get("secrets"), host.allow_repo_secrets, host.encrypted, folder
        ),
        configs=top_files(report, "configs", top.get("configs"), True),
        variables=interpolator.values,
        allow_repo_secrets=host.allow_repo_secrets,
        secret_variables=interpolator.secret,
        secret_env=interpolator.secret_refs,
        encrypted=host.encrypted,
    )
    _services(project, host.profiles, result)


def _interpolated(
    report: Report,
    folder: str,
    parsed: dict[str, Any],
    dotenv: bytes | None,
    variables: Mapping[str, str],
    host: _Host,
) -> tuple[object, Interpolator]:
    """``parsed`` interpolated with the host's variables over the committed ``.env`` (whose
    variables are secret when it was encrypted), and the interpolator (what it recorded)."""
    committed = _dotenv_values(report, folder, dotenv, variables, bool(host.secret_dotenv))
    secret = _secret_variables(committed, variables, dotenv, host.secret_dotenv)
    interpolator = Interpolator({**committed, **variables}, secret=secret)
    return interpolate(parsed, interpolator, lambda p, m: report.error(p, m)), interpolator


def _parse(report: Report, raw: bytes) -> dict[str, Any] | None:
    if len(raw) > MAX_FILE_BYTES:
        report.at(Mark(1, 1), f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.at(Mark(1, 1), f"file is not UTF-8 text (byte {exc.start})")
        return None
    try:
        docs = list(documents(text, core_schema=True))
    except DocumentError as exc:
        report.at(exc.mark, exc.message)
        return None
    docs = [d for d in docs if d.data is not None]
    if len(docs) != 1:
        where = docs[1].start if len(docs) > 1 else Mark(1, 1)
        report.at(where, "a compose file holds exactly one YAML document")
        return None
    report.doc = docs[0]
    for path, mark in docs[0].duplicate_keys:
        report.at(mark, f"{dotted(path)}: key appears twice in this mapping")
        if len(path) >= 2 and path[0] == "services":
            report.failed.add(str(path[1]))
    if not isinstance(docs[0].data, dict):
        report.at(docs[0].start, "a compose file must be a mapping with services:")
        return None
    return docs[0].data


def _dotenv_values(
    report: Report, folder: str, dotenv: bytes | None, host: Mapping[str, str], secret: bool
) -> dict[str, str]:
    if dotenv is None:
        return {}
    name = posixpath.join(folder, ".env") if folder not in ("", ".") else ".env"
    try:
        values, bad = parse_dotenv(dotenv.decode("utf-8"), host)
    except UnicodeDecodeError as exc:
        report.problems.append(Problem(name, 1, 1, f"file is not UTF-8 text (byte {exc.start})"))
        return {}
    for line, message in bad:
        if secret:  # a message may quote the line: a decrypted value is never shown
            message = f"{message.split(':', 1)[0]}: not a value trueup can read (not shown)"
        report.problems.append(Problem(name, line, 1, message))
    return values


def _secret_variables(
    committed: Mapping[str, str], host: Mapping[str, str], dotenv: bytes | None, file: str
) -> dict[str, str]:
    """The secret variables of an encrypted ``.env`` (``file``; none when it is ""): each →
    ``file``, or → "" when Compose reads its value otherwise than sops does (quoted, escaped,
    interpolated, a comment after it), since the container gets sops's value."""
    if not file or dotenv is None:
        return {}
    literal: dict[str, str] = {}
    for line in dotenv.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            literal[key] = value.replace("\\n", "\n")
    return {k: file if literal.get(k) == v else "" for k, v in committed.items() if k not in host}


def _services(project: Project, profiles: frozenset[str], result: ProjectResult) -> None:
    report = project.report
    translated: dict[str, Translation] = {}
    active: set[str] = set()
    for service, data in project.services.items():
        at: Path = ("services", str(service))
        checked = report.mapping(
            at, data, keys.SERVICE, keys.SERVICE_UNSUPPORTED, keys.SERVICE_IGNORED
        )
        if checked is None:
            result.invalid_apps.add(project.app_name(str(service)))
            continue
        _check_ignored(report, at, data)
        if _active(report, at, checked, profiles):
            active.add(str(service))
        translated[str(service)] = build_app(project, str(service), checked)
    check_dependencies(project, translated, active)
    for service, out in translated.items():
        app_name = project.app_name(service)
        failed = service in report.failed
        app = _validate(project, out, only_extensions=failed)
        if app is None or failed:
            result.invalid_apps.add(app_name)
        elif service in active:
            line = report.mark(("services", service), key=True).line
            locate = _locator(report, out)
            result.apps.append(ProjectApp(app, service, line, locate))


def _check_ignored(report: Report, at: Path, data: dict[str, Any]) -> None:
    """Ignored keys are still checked as Compose checks them (a wrong one is refused there)."""
    for key in ("container_name", "hostname"):
        if key in data:
            value = report.text((*at, key), data[key], numbers=False)
            if key == "container_name" and value is not None and not _CONTAINER.match(value):
                report.error((*at, key), f"{value!r} is not a container name")


def _active(report: Report, at: Path, data: dict[str, Any], profiles: frozenset[str]) -> bool:
    if "profiles" not in data:
        return True
    given = report.strings((*at, "profiles"), data["profiles"])
    return bool(given) and bool(set(given or ()) & profiles)


def _locator(report: Report, out: Translation) -> Callable[[Path], Mark]:
    def locate(path: Path) -> Mark:
        return report.mark(out.compose_path(path))

    return locate


def _validate(project: Project, out: Translation, *, only_extensions: bool) -> App | None:
    """The service's ``App``; its problems reported in compose terms. For a service that has
    failed already, only the problems of its ``x-trueup`` part (which nothing else checks)."""
    data = {
        "apiVersion": "trueup/v1",
        "kind": "App",
        "metadata": {"name": project.app_name(out.service), "labels": out.labels},
        "spec": out.spec,
    }
    try:
        return App.model_validate(data)
    except ValidationError as exc:
        extensions = ("services", out.service, "x-trueup")
        for err in exc.errors():
            path, message = describe(err, out)
            if not only_extensions or path[:3] == extensions:
                project.report.error(path, message)
        return None
