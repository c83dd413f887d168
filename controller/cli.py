"""The `trueup` command line (click). A stable contract: scripts and CI depend on its exit codes.

Each command is thin: it parses options, calls the stage functions, renders, and maps trueup's
errors to exit codes. No traceback ever reaches a user; an unexpected one is a bug.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from controller import __version__
from controller.errors import TrueupError

# Exit codes shared by validate / diff / apply (see README, "Command line").
EXIT_OK = 0
EXIT_CHANGES = 1  # diff: changes pending; validate: invalid; apply: an app failed
EXIT_ERROR = 2


def common_options(f: Any) -> Any:
    """Options every command that touches an engine or the state dir accepts."""
    f = click.option(
        "--instance",
        default="default",
        envvar="TRUEUP_INSTANCE",
        show_default=True,
        help="Controller instance name; instances never touch each other's containers.",
    )(f)
    f = click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        default=Path(".trueup"),
        envvar="TRUEUP_STATE_DIR",
        show_default=True,
        help="Where trueup keeps git mirrors, history and locks.",
    )(f)
    f = click.option(
        "--runtime",
        type=click.Choice(["auto", "docker", "podman", "swarm"]),
        default="auto",
        envvar="TRUEUP_RUNTIME",
        show_default=True,
        help="Container engine to drive.",
    )(f)
    f = click.option(
        "--runtime-url",
        default=None,
        envvar="TRUEUP_RUNTIME_URL",
        help="Engine API URL (default: DOCKER_HOST, then the Docker socket, then Podman's).",
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trueup")
def main() -> None:
    """trueup keeps the containers on a host matched to the manifests committed in git."""


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print an error for a person and exit with ``code``; never a traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def source_options(f: Any) -> Any:
    """Where manifests come from: a repository (path or URL), a sub-path, a revision."""
    f = click.option(
        "--repo",
        default=".",
        envvar="TRUEUP_REPO",
        show_default=True,
        help="Local path (a repo or a folder inside one) or URL (file://, git://, https://, ssh://).",
    )(f)
    f = click.option(
        "--path",
        "manifest_path",
        default=".",
        envvar="TRUEUP_PATH",
        show_default=True,
        help="Folder of manifests, relative to the deployment root.",
    )(f)
    f = click.option("--branch", default=None, envvar="TRUEUP_BRANCH", help="Branch to follow.")(f)
    f = click.option("--rev", default=None, help="Commit, short commit, tag or branch to read.")(f)
    f = click.option(
        "--token-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        envvar="TRUEUP_TOKEN_FILE",
        help="File holding an access token for https remotes.",
    )(f)
    return f


def worktree_option(f: Any) -> Any:
    return click.option(
        "--worktree",
        is_flag=True,
        help="Read the files on disk (uncommitted edits included) instead of a commit.",
    )(f)


def display_path(repo: str, name: str) -> str:
    """How to show a manifest file name: relative to the current directory for local repos."""
    local = Path(repo)
    if "://" in repo or not local.exists():
        return name
    try:
        return os.path.relpath(local / name)
    except ValueError:
        return name


@main.command()
@source_options
@worktree_option
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".trueup"),
    envvar="TRUEUP_STATE_DIR",
    show_default=True,
    help="Where git mirrors are kept.",
)
def validate(
    repo: str,
    manifest_path: str,
    branch: str | None,
    rev: str | None,
    token_file: Path | None,
    worktree: bool,
    state_dir: Path,
) -> None:
    """Check the manifests; print every problem as FILE:LINE:COLUMN: message.

    Exit 0 when all are valid, 1 when any is not, 2 when the repository cannot be read.
    """
    from controller.manifests import load_files
    from controller.source import read_manifest_files

    try:
        files = read_manifest_files(
            repo,
            manifest_path,
            rev=rev,
            branch=branch,
            worktree=worktree,
            state_dir=state_dir,
            token_file=token_file,
        )
    except TrueupError as exc:
        fail(str(exc))
        return
    result = load_files(files.files)
    for problem in result.problems:
        shown = display_path(repo, problem.file)
        click.echo(f"{shown}:{problem.line}:{problem.column}: {problem.message}")
    where = f"at {files.revision[:12]}" if files.revision else "in the working tree"
    n_files = len(files.files)
    if result.problems:
        click.echo(
            f"{len(result.problems)} problem(s) in {len(result.failed_files)} of {n_files} "
            f"file(s) {where}; {len(result.apps)} app(s) valid",
            err=True,
        )
        sys.exit(EXIT_CHANGES)
    click.echo(f"{len(result.apps)} app(s) in {n_files} file(s) {where}: valid", err=True)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("schemas"),
    show_default=True,
    help="Folder to write app.v1.json into.",
)
def schema(out: Path) -> None:
    """Write the JSON Schema of manifest v1 (for editors and CI linters)."""
    from controller import schema as schema_module

    target = schema_module.write(out)
    click.echo(str(target))
