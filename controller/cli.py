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
    from controller.source import GitSource

    try:
        with GitSource(repo, state_dir=state_dir, branch=branch, token_file=token_file) as source:
            if worktree:
                files = source.read_worktree(manifest_path)
            else:
                files = source.manifest_files(source.resolve(rev).sha, manifest_path)
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


def engine_options(f: Any) -> Any:
    """Options of commands that plan against an engine: secrets and host-power policy."""
    f = click.option(
        "--secrets-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        envvar="TRUEUP_SECRETS_DIR",
        help="Folder of <name>.env files that secretRefs read (never in git).",
    )(f)
    f = click.option(
        "--allow-privileged", is_flag=True, help="Let manifests run privileged containers."
    )(f)
    f = click.option(
        "--allow-host-network", is_flag=True, help="Let manifests use networkMode: host."
    )(f)
    f = click.option(
        "--allow-bind",
        "allow_binds",
        multiple=True,
        help="A host path (and what is below it) that manifests may bind-mount; repeatable.",
    )(f)
    f = click.option(
        "--allow-cap", "allow_caps", multiple=True, help="A capability manifests may add."
    )(f)
    f = click.option(
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Text for people, JSON for scripts.",
    )(f)
    return f


def _policy(kw: dict[str, Any]) -> Any:
    from controller.policy import Policy

    return Policy(
        allow_privileged=kw["allow_privileged"],
        allow_host_network=kw["allow_host_network"],
        allowed_capabilities=frozenset(kw["allow_caps"]),
        allowed_bind_paths=tuple(kw["allow_binds"]),
    )


async def _pass(kw: dict[str, Any], *, apply: bool, worktree: bool) -> Any:
    from controller.reconciler import Reconciler
    from controller.runtime import connect
    from controller.source import GitSource

    with GitSource(
        kw["repo"], state_dir=kw["state_dir"], branch=kw["branch"], token_file=kw["token_file"]
    ) as source:
        runtime = connect(kw["runtime"], kw["runtime_url"], instance=kw["instance"])
        try:
            reconciler = Reconciler(
                source,
                runtime,
                instance=kw["instance"],
                path=kw["manifest_path"],
                secrets_dir=kw["secrets_dir"],
                policy=_policy(kw),
            )
            return await reconciler.run_pass(
                rev=kw["rev"],
                worktree=worktree,
                apply=apply,
                prune=kw.get("prune", True),
                allow_empty=kw.get("allow_empty", False),
            )
        finally:
            await runtime.close()


def _run_pass(kw: dict[str, Any], *, apply: bool, worktree: bool = False) -> Any:
    import asyncio

    from controller import logs

    logs.configure(level="info" if apply and kw["output"] == "text" else "warning")
    try:
        return asyncio.run(_pass(kw, apply=apply, worktree=worktree))
    except TrueupError as exc:
        fail(str(exc))


def _show_plan(result: Any, kw: dict[str, Any]) -> None:
    from controller import render

    if kw["output"] == "json":
        click.echo(render.plan_json_text(result.plan, result.problems))
        return
    colour = sys.stdout.isatty()
    click.echo(
        render.plan_text(
            result.plan,
            result.problems,
            colour=colour,
            file_label=lambda name: display_path(kw["repo"], name),
        )
    )


@main.command()
@common_options
@source_options
@worktree_option
@engine_options
def diff(**kw: Any) -> None:
    """Show what apply would change; change nothing.

    Exit 0 in sync, 1 changes pending, 2 error (including a manifest that failed to load).
    """
    result = _run_pass(kw, apply=False, worktree=kw["worktree"])
    _show_plan(result, kw)
    if result.problems:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if result.plan.in_sync else EXIT_CHANGES)


@main.command()
@common_options
@source_options
@engine_options
@click.option(
    "--prune/--no-prune", default=True, show_default=True, help="Remove apps gone from git."
)
@click.option("--allow-empty", is_flag=True, help="Allow a pass that deletes every app.")
def apply(**kw: Any) -> None:
    """Make the host match git at the branch tip (or --rev), once.

    Exit 0 when everything converged, 1 when an app failed, 2 on an error (a manifest that
    failed to load is an error: the valid apps are applied first).
    """
    result = _run_pass(kw, apply=True)
    _show_plan(result, kw)
    for outcome in result.outcomes:
        mark = "ok" if outcome.ok else "FAILED"
        line = f"{mark:6} {outcome.app} {outcome.action} ({outcome.duration_s:.1f}s)"
        if not outcome.ok:
            line += f": {outcome.message}"
        click.echo(line, err=kw["output"] == "json")
    if result.problems:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if result.failed else EXIT_OK)


@main.command()
@common_options
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text for people, JSON for scripts.",
)
def status(**kw: Any) -> None:
    """Health and replicas of this instance's apps, from the container engine alone."""
    import asyncio

    from controller import status as status_module
    from controller.logs import configure
    from controller.runtime import connect

    configure()  # log events go to stderr; stdout carries only the status

    async def run() -> list[Any]:
        runtime = connect(kw["runtime"], kw["runtime_url"], instance=kw["instance"])
        try:
            return await status_module.collect(runtime)
        finally:
            await runtime.close()

    try:
        apps = asyncio.run(run())
    except TrueupError as exc:
        fail(str(exc))
        return
    if kw["output"] == "json":
        click.echo(status_module.render_json(apps))
    else:
        click.echo(status_module.render_text(apps))


@main.command()
@common_options
@click.argument("app")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Last N lines per replica.")
def logs(app: str, follow: bool, tail: int | None, **kw: Any) -> None:
    """Print the output of every replica of APP, each line prefixed with its replica."""
    import asyncio

    from controller.logs import configure
    from controller.runtime import connect
    from controller.status import app_logs

    configure()  # log events go to stderr; stdout carries only the app's lines

    async def run() -> None:
        runtime = connect(kw["runtime"], kw["runtime_url"], instance=kw["instance"])
        try:
            async for line in app_logs(runtime, app, follow=follow, tail=tail):
                click.echo(line)
        finally:
            await runtime.close()

    try:
        asyncio.run(run())
    except TrueupError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
