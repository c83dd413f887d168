"""Turn manifest files and compose files into validated ``App`` models, reporting every
problem with its place.

Input is a mapping of file name to bytes (from git at a commit, or from the working tree);
output is a ``LoadResult``: the apps that are valid, and a list of ``Problem`` (file, line,
column, message). A broken file never hides the valid apps of other files: callers apply the
valid apps and use ``failed_files`` to suspend pruning. A YAML file that sops encrypted (a
document with a ``sops`` block and no ``apiVersion``) is not a manifest and is passed over, nor
is sops's configuration (``.sops.yaml``).

The files are sorted first (`discovery.classify`): compose files are compose projects
(`projects.load_compose`), the other YAML files of a project's folder are its data, every
other YAML file is a trueup manifest. Once every file is loaded, a manifest file that a
``files`` source of any app names (the file, or a folder above it) is taken out again: it is
data too. Files not read as manifests are listed in ``skipped`` with the reason. The
repository checks then run across manifests and compose projects alike.

``load_files`` does not raise for bad input: a file over ``MAX_FILE_BYTES``, not UTF-8, not
YAML, or whose parsing or validation raises anything unexpected (any ``Exception``) becomes a
problem of that file only. The repository checks that follow see validated apps only and are
iterative, so no ``dependsOn`` chain reaches the recursion limit. Only what is not an
``Exception`` (``KeyboardInterrupt``, ``SystemExit``, cancellation) passes through.
"""

from __future__ import annotations

import difflib
import posixpath
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from controller.manifests.discovery import ComposeInputs, classify
from controller.manifests.models import API_VERSION, UNION_TAGS, App
from controller.manifests.problems import Problem
from controller.manifests.projects import load_compose
from controller.manifests.pydantic_errors import error_path, plain_message
from controller.manifests.yamlmarks import Document, DocumentError, Mark, Path, documents

MAX_FILE_BYTES = 1024 * 1024
SOPS_CONFIG_NAMES = (".sops.yaml", ".sops.yml")


@dataclass(frozen=True)
class LoadedApp:
    """A valid app and where it was declared."""

    app: App
    file: str
    line: int


@dataclass
class LoadResult:
    """What a set of manifest files yielded."""

    apps: dict[str, LoadedApp] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    failed_files: set[str] = field(default_factory=set)
    invalid_apps: set[str] = field(default_factory=set)
    """Names of apps whose manifest exists but failed: they must be left running as they are."""
    warnings: list[Problem] = field(default_factory=list)
    """Located notes that fail nothing (a compose key trueup ignores)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """YAML files not read as manifests, and why (data of a compose project, a files source)."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Candidate:
    app: App
    file: str
    locate: Callable[[Path], Mark]
    line: int


def load_files(files: Mapping[str, bytes], compose: ComposeInputs | None = None) -> LoadResult:
    """Load every manifest document and compose project, then run the repository checks."""
    layout = classify(files)
    loaded: dict[str, tuple[LoadResult, list[_Candidate]]] = {}
    for name, raw in layout.manifests.items():
        part = LoadResult()
        loaded[name] = (part, _load_file(name, raw, part))
    projects: dict[str, str] = {}
    for name, project in layout.projects.items():
        found = load_compose(project, files[name], compose or ComposeInputs(), MAX_FILE_BYTES)
        projects[name] = found.project
        part = LoadResult(
            problems=found.problems,
            failed_files={name} if found.problems else set(),
            invalid_apps=found.invalid_apps,
            warnings=found.warnings,
        )
        loaded[name] = (part, [_Candidate(a.app, name, a.locate, a.line) for a in found.apps])
    result = LoadResult()
    sources = _file_sources(c for _, apps in loaded.values() for c in apps)
    candidates: list[_Candidate] = []
    for name in sorted(loaded):
        part, apps = loaded[name]
        if name in layout.manifests and _is_source(name, sources):
            result.skipped[name] = "a files source of an app"
            continue
        result.problems.extend(part.problems)
        result.warnings.extend(part.warnings)
        result.failed_files |= part.failed_files
        result.invalid_apps |= part.invalid_apps
        candidates.extend(apps)
    for name, owner in layout.data.items():
        result.skipped[name] = f"data of compose project {projects[owner]}"
        if b"apiVersion: trueup/v1" in files[name]:  # a manifest put there by mistake?
            result.skipped[name] += "; it looks like a trueup manifest: move it out of the folder"
    for name, used in layout.shadowed.items():
        result.skipped[name] = f"{used} is the compose file of this folder"
    _check_repository(candidates, result)
    result.problems.sort()
    result.warnings.sort()
    result.skipped = dict(sorted(result.skipped.items()))
    return result


def _file_sources(candidates: Iterable[_Candidate]) -> set[str]:
    return {f.source for c in candidates for f in c.app.spec.files if f.source is not None}


def _is_source(name: str, sources: set[str]) -> bool:
    """True when ``name`` is a ``files`` source or lies in a folder that is one."""
    parent = name
    while parent:
        if parent in sources:
            return True
        parent = posixpath.dirname(parent)
    return False


def _load_file(name: str, raw: bytes, result: LoadResult) -> list[_Candidate]:
    def problem(mark: Mark, message: str) -> None:
        result.problems.append(Problem(name, mark.line, mark.column, message))
        result.failed_files.add(name)

    if name.rpartition("/")[2] in SOPS_CONFIG_NAMES:
        return []  # sops's own configuration (creation rules), not a manifest
    if len(raw) > MAX_FILE_BYTES:
        problem(Mark(1, 1), f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
        return []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem(Mark(1, 1), f"file is not UTF-8 text (byte {exc.start})")
        return []
    found: list[_Candidate] = []
    try:
        for doc in documents(text):
            app = _validate_document(doc, problem, result)
            if app is not None:
                found.append(_Candidate(app, name, doc.locate, doc.start.line))
    except DocumentError as exc:
        problem(exc.mark, exc.message)
    except Exception as exc:  # a validator that raised what it should not: this file only
        problem(Mark(1, 1), f"cannot read this file ({type(exc).__name__})")
    return found


def _sops_document(data: dict[Any, Any]) -> bool:
    """True for a document sops wrote: a ``sops`` block with its ``mac`` and ``lastmodified``."""
    block = data.get("sops")
    return isinstance(block, dict) and "mac" in block and "lastmodified" in block


def _validate_document(doc: Document, problem: Any, result: LoadResult) -> App | None:
    data = doc.data
    if data is None:
        return None
    if not isinstance(data, dict):
        problem(doc.start, f"a manifest must be a mapping with apiVersion: {API_VERSION}")
        return None
    for path, mark in doc.duplicate_keys:
        problem(mark, f"{_dotted(path)}: key appears twice in this mapping")
    api = data.get("apiVersion")
    if api is None and _sops_document(data):
        return None  # a SOPS-encrypted file (apps read it through secretRef.file / files)
    if api != API_VERSION:
        mark = doc.locate(("apiVersion",))
        problem(mark, f"apiVersion: expected {API_VERSION!r}, got {api!r}")
        return None
    if data.get("kind") != "App":
        mark = doc.locate(("kind",))
        problem(mark, f"kind: expected 'App', got {data.get('kind')!r}")
        return None
    try:
        app = App.model_validate(data)
    except ValidationError as exc:
        name = _name_of(data)
        if name:
            result.invalid_apps.add(name)
        for err in _without_misspelt_missing(exc.errors()):
            mark, message = _describe(err, doc)
            problem(mark, message)
        return None
    if doc.duplicate_keys:
        result.invalid_apps.add(app.name)
        return None
    return app


def _without_misspelt_missing(errors: list[Any]) -> list[Any]:
    """Drop "X is missing" when a misspelt sibling key already hints at X (one problem, not two)."""
    hinted: set[Path] = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = tuple(p for p in err["loc"] if p not in UNION_TAGS)
            hint = _did_you_mean(loc)
            if hint:
                hinted.add((*loc[:-1], hint))
    return [
        e
        for e in errors
        if not (
            e["type"] == "missing" and tuple(p for p in e["loc"] if p not in UNION_TAGS) in hinted
        )
    ]


def _name_of(data: dict[Any, Any]) -> str | None:
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def _describe(err: Any, doc: Document) -> tuple[Mark, str]:
    loc = error_path(err)
    kind = err["type"]
    if kind == "rule":
        return doc.locate(loc), f"{_dotted(loc)}: {err['msg']}"
    if kind == "extra_forbidden":
        mark = doc.locate(loc, prefer_key=True)
        message = f"{_dotted(loc)}: unknown field"
        hint = _did_you_mean(loc)
        return mark, message + (f"; did you mean {hint!r}?" if hint else "")
    if kind == "missing":
        parent = loc[:-1]
        return doc.locate(parent, prefer_key=True), f"{_dotted(loc)}: required field is missing"
    return doc.locate(loc), f"{_dotted(loc)}: {plain_message(err)}"


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _did_you_mean(loc: Path) -> str | None:
    names = _field_names_at(App, loc[:-1])
    if not names or not isinstance(loc[-1], str):
        return None
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
    if not close:
        lowered = {n.lower(): n for n in names}
        return lowered.get(loc[-1].lower().replace("_", "").replace("-", ""))
    return close[0]


def _field_names_at(model: type[BaseModel], path: Path) -> list[str]:
    """The YAML field names allowed at ``path`` below ``model`` (for "did you mean")."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        current = _model_in(current)
        if current is None:
            return []
        by_alias = {(f.alias or n): f for n, f in current.model_fields.items()}
        if part not in by_alias:
            return []
        current = by_alias[part].annotation
    final = _model_in(current)
    if final is None:
        return []
    return [(f.alias or n) for n, f in final.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """Find the model class inside ``annotation`` (through Optional, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _check_repository(candidates: list[_Candidate], result: LoadResult) -> None:
    """Whole-repository rules: unique names, dependsOn naming real apps, no cycles."""
    by_name: dict[str, list[_Candidate]] = {}
    for c in candidates:
        by_name.setdefault(c.app.name, []).append(c)
    rejected: set[str] = set()

    def reject(c: _Candidate, path: Path, message: str) -> None:
        mark = c.locate(path)
        result.problems.append(Problem(c.file, mark.line, mark.column, message))
        result.failed_files.add(c.file)
        rejected.add(c.app.name)

    for name, group in by_name.items():
        if len(group) > 1:
            places = [f"{c.file}:{c.locate(('metadata', 'name')).line}" for c in group]
            for i, c in enumerate(group):
                others = ", ".join(p for j, p in enumerate(places) if j != i)
                reject(
                    c,
                    ("metadata", "name"),
                    f"metadata.name: app {name!r} is also declared at {others}",
                )

    _check_routes([g[0] for g in by_name.values() if len(g) == 1], reject)

    known = set(by_name) | result.invalid_apps
    for c in candidates:
        for i, dep in enumerate(c.app.spec.depends_on):
            if dep not in known:
                hint = difflib.get_close_matches(dep, sorted(known), n=1)
                reject(
                    c,
                    ("spec", "dependsOn", i),
                    f"spec.dependsOn[{i}]: no app named {dep!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else ""),
                )

    graph = {n: list(g[0].app.spec.depends_on) for n, g in by_name.items() if len(g) == 1}
    for cycle in _cycles(graph):
        text = " → ".join([*cycle, cycle[0]])
        for name in cycle:
            for c in by_name[name]:
                reject(c, ("spec", "dependsOn"), f"spec.dependsOn: dependency cycle {text}")

    for name, group in by_name.items():
        if name in rejected:
            result.invalid_apps.add(name)
            continue
        c = group[0]
        result.apps[name] = LoadedApp(c.app, c.file, c.line)


def _check_routes(candidates: list[_Candidate], reject: Any) -> None:
    """A host + path prefix may be claimed by one route only (``/api/`` is ``/api``); every
    claimant is rejected, naming the others' files and lines."""
    claims: dict[str, list[tuple[_Candidate, int]]] = {}
    for c in candidates:
        for i, route in enumerate(c.app.spec.routes):
            key = route.host + (route.path.rstrip("/") or "/")  # as routes.table.route_key
            claims.setdefault(key, []).append((c, i))
    for key in sorted(claims):
        group = claims[key]
        if len(group) < 2:
            continue
        places = [
            f"app {c.app.name!r} at {c.file}:{c.locate(('spec', 'routes', i)).line}"
            for c, i in group
        ]
        for n, (c, i) in enumerate(group):
            others = ", ".join(p for m, p in enumerate(places) if m != n)
            reject(
                c,
                ("spec", "routes", i, "host"),
                f"spec.routes[{i}]: route {key} is also claimed by {others}",
            )


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search, each reported once, rotated to
    start at its smallest name (deterministic). Iterative: a chain of any length is fine."""
    found: dict[tuple[str, ...], list[str]] = {}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(graph):
        if root in state:
            continue
        state[root] = 1
        stack = [root]
        pending = [iter(graph[root])]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                state[stack.pop()] = 2
                pending.pop()
            elif dep not in graph:
                continue
            elif state.get(dep) == 1:
                cycle = stack[stack.index(dep) :]
                start = cycle.index(min(cycle))
                rotated = cycle[start:] + cycle[:start]
                found.setdefault(tuple(rotated), rotated)
            elif dep not in state:
                state[dep] = 1
                stack.append(dep)
                pending.append(iter(graph[dep]))
    return [found[k] for k in sorted(found)]
