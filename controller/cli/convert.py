"""`trueup convert FILE`: the trueup manifests a compose file translates to, for those who move.

It reads the compose file on disk (with the ``.env`` beside it and, with
``--compose-vars-dir``, the host's variables of its project), runs the same normaliser a pass
runs (`manifests.projects.load_compose`) and prints one ``kind: App`` document per service as
multi-document YAML that `trueup validate` loads to the same apps. Paths in the output (build
contexts, files sources, ``envFrom``) are relative to the deployment root, ``--repo``
(default: the current directory), so the manifests work when committed anywhere under it.
Problems are printed located, like `validate`'s, on stderr; the valid services are still
printed, and the exit code is 1.
"""

from __future__ import annotations

import posixpath
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from controller.cli.exits import EXIT_CHANGES, fail
from controller.cli.groups import ComposeOptions, Params, text
from controller.cli.options import COMMON, REPO, options, reads
from controller.errors import TrueupError

if TYPE_CHECKING:
    from controller.manifests.models import App

_MAX_BYTES = 1024 * 1024
_CHECK = ("interval", "timeout", "startPeriod")


@dataclass(frozen=True)
class ConvertOptions:
    file: Path
    repo: str
    compose: ComposeOptions

    @classmethod
    def read(cls, params: Params) -> ConvertOptions:
        file = params["file"]
        if file is None:  # as docker compose: the compose file of the current directory
            names = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
            found = [Path(n) for n in names if Path(n).is_file()]
            if not found:
                fail(f"no compose file here ({', '.join(names)}); name one: trueup convert FILE")
            file = found[0]
        assert isinstance(file, Path)
        return cls(file, text(params, "repo"), ComposeOptions.read(params))


@click.command()
@click.argument(
    "file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@options(COMMON, (REPO,))
@reads(ConvertOptions.read)
def convert(opts: ConvertOptions) -> None:
    """Print the trueup manifests the compose file FILE translates to (YAML, one per service;
    default: the compose file of the current directory).

    Exit 0 when every service translates, 1 when any has a problem (printed as
    FILE:LINE:COLUMN: message on stderr), 2 when the file cannot be read.
    """
    from controller.manifests.discovery import DOTENV, Project
    from controller.manifests.projects import load_compose

    name = _relative(opts.file, Path(opts.repo))
    try:
        raw = _read(opts.file)
        dotenv_path = opts.file.parent / DOTENV
        dotenv = _read(dotenv_path) if dotenv_path.is_file() else None
        inputs = opts.compose.host().inputs()
    except TrueupError as exc:
        fail(str(exc))
    project = Project(name, posixpath.dirname(name), dotenv)
    found = load_compose(project, raw, inputs, _MAX_BYTES)
    documents = [_document(a.app, name, a.line) for a in found.apps]
    if documents:
        click.echo("\n".join(documents), nl=False)
    for problem in [*found.problems, *(w for w in found.warnings)]:
        kind = "" if problem in found.problems else "warning: "
        click.echo(
            f"{problem.file}:{problem.line}:{problem.column}: {kind}{problem.message}", err=True
        )
    if found.problems:
        sys.exit(EXIT_CHANGES)


def _relative(file: Path, repo: Path) -> str:
    """``file`` relative to the deployment root ``repo``; it must lie inside it."""
    try:
        return file.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        fail(f"{file} is not inside --repo {repo} (paths in the manifests are relative to it)")


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise TrueupError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return data


def _duration(seconds: float) -> str:
    """Seconds as a manifest writes them: ``2s``, ``90s``, ``1m``, ``500ms``."""
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    return f"{whole // 60}m" if whole and whole % 60 == 0 else f"{whole}s"


def _document(app: App, file: str, line: int) -> str:
    """One app as a YAML document, its defaults left out, with where it came from."""
    import yaml

    body: dict[str, Any] = app.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    body = {"apiVersion": app.api_version, "kind": app.kind, **body}
    spec = body.get("spec", {})
    for holder, keys in ((spec, ("stopGracePeriod",)), (spec.get("healthCheck") or {}, _CHECK)):
        for key in keys:
            if isinstance(holder.get(key), int | float):
                holder[key] = _duration(float(holder[key]))
    head = f"---\n# {app.name}: from {file}:{line} (trueup convert)\n"
    return head + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
