"""The commands that read git once and exit: `validate`, `diff`, `apply` and `schema`.

Each parses its options into one typed object, runs the stages (`validate` the manifests alone;
`diff` and `apply` a whole pass through `connect.pass_reconciler`), renders the result and
maps it to the README's exit codes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from controller.cli.exits import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, fail
from controller.cli.groups import (
    ComposeOptions,
    EngineOptions,
    Params,
    PolicyOptions,
    RouterOptions,
    SourceOptions,
    flag,
    path,
    paths,
    text,
)
from controller.cli.options import COMMON, OUTPUT, SOURCE, WORKTREE, options, reads
from controller.errors import TrueupError

if TYPE_CHECKING:
    from controller.desired.resolve import DesiredState
    from controller.noop.record import Converged, Recording
    from controller.planning import Plan
    from controller.reconciler import PassResult
    from controller.sops.repo import RepoSops
    from controller.source import GitSource


@dataclass(frozen=True)
class ValidateOptions:
    source: SourceOptions
    state_dir: Path
    worktree: bool
    sops_age_key_files: tuple[Path, ...] = ()
    compose: ComposeOptions = field(default_factory=ComposeOptions)

    @classmethod
    def read(cls, params: Params) -> ValidateOptions:
        return cls(
            SourceOptions.read(params),
            path(params, "state_dir"),
            flag(params, "worktree"),
            paths(params, "sops_age_key_file"),
            ComposeOptions.read(params),
        )


@dataclass(frozen=True)
class PassOptions:
    """What `diff` and `apply` are given; ``worktree`` is diff's, ``prune`` and
    ``allow_empty`` apply's."""

    engine: EngineOptions
    source: SourceOptions
    policy: PolicyOptions
    routing: RouterOptions
    output: str
    worktree: bool
    prune: bool
    allow_empty: bool
    image_keep: int = 3
    compose: ComposeOptions = field(default_factory=ComposeOptions)

    @classmethod
    def read(cls, params: Params) -> PassOptions:
        return cls(
            engine=EngineOptions.read(params),
            source=SourceOptions.read(params),
            policy=PolicyOptions.read(params),
            routing=RouterOptions.read(params),
            output=text(params, "output"),
            worktree=flag(params, "worktree", default=False),
            prune=flag(params, "prune", default=True),
            allow_empty=flag(params, "allow_empty", default=False),
            image_keep=int(str(params.get("image_keep", 3))),
            compose=ComposeOptions.read(params),
        )


def display_path(repo: str, name: str) -> str:
    """How to show a manifest file name: relative to the current directory for local repos."""
    local = Path(repo)
    if "://" in repo or not local.exists():
        return name
    try:
        return os.path.relpath(local / name)
    except ValueError:
        return name


@click.command()
@options(COMMON, SOURCE, (WORKTREE,))
@reads(ValidateOptions.read)
def validate(opts: ValidateOptions) -> None:
    """Check the manifests; print every problem as FILE:LINE:COLUMN: message.

    SOPS files the apps use are decrypted with ``--sops-age-key-file`` (without it, only
    checked to be SOPS files trueup supports); no value is printed. Exit 0 when all are
    valid, 1 when any is not, 2 when the repository cannot be read.
    """
    from controller.manifests.loader import load_files
    from controller.sops.check import check_sops
    from controller.source import GitSource

    source = opts.source
    try:
        inputs = opts.compose.host().inputs()
        with GitSource(
            source.repo,
            state_dir=opts.state_dir,
            branch=source.branch,
            token_file=source.token_file,
        ) as git:
            if opts.worktree:
                files = git.read_worktree(source.path)
            else:
                files = git.manifest_files(git.resolve(source.rev).sha, source.path)
            read, repo = _repo_sops(git, files.revision, opts.sops_age_key_files)
            result = load_files(files.files, replace(inputs, sops=repo))
            sops = check_sops(result, read, repo)
    except TrueupError as exc:
        fail(str(exc))
    result.problems = sorted(result.problems + sops.problems)
    result.failed_files |= {p.file for p in sops.problems}
    if sops.summary():
        click.echo(sops.summary(), err=True)
    for problem in result.problems:
        shown = display_path(source.repo, problem.file)
        click.echo(f"{shown}:{problem.line}:{problem.column}: {problem.message}")
    for warning in result.warnings:
        shown = display_path(source.repo, warning.file)
        click.echo(f"{shown}:{warning.line}:{warning.column}: warning: {warning.message}")
    for name, why in result.skipped.items():
        click.echo(f"skipped: {display_path(source.repo, name)} ({why})")
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


def _repo_sops(
    git: GitSource, revision: str | None, key_files: tuple[Path, ...]
) -> tuple[Callable[[str], bytes], RepoSops]:
    """The repository's files at ``revision`` (None: on disk), and its SOPS files."""
    from controller.sops.repo import RepoSops, single_file
    from controller.source.files import read_disk

    def read(file: str) -> bytes:
        if revision is None:
            assert git.worktree_root is not None
            return single_file(read_disk(git.worktree_root, file), file)
        return single_file(git.read_files(revision, file), file)

    return read, RepoSops(read, key_files)


@click.command()
@options(COMMON)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("schemas"),
    show_default=True,
    help="Folder to write app.v1.json into.",
)
@reads(lambda params: path(params, "out"))
def schema(out: Path) -> None:
    """Write the JSON Schema of manifest v1 (for editors and CI linters)."""
    from controller.manifests import schema as schema_module

    target = schema_module.write(out)
    click.echo(str(target))


def run_pass(opts: PassOptions, *, apply: bool, watch: Recording | None = None) -> PassResult:
    """One pass (planning only unless ``apply``); a trueup error exits 2 naming it.
    ``watch`` is told the engine the pass drove (the no-op stamp reads its list answer)."""
    import asyncio

    from controller.cli.connect import pass_reconciler
    from controller.daemon import logs
    from controller.daemon.overrides import Overrides, suspend_plan

    async def one_pass() -> PassResult:
        # `trueup suspend APP` holds APP for a one-shot pass too, as under `trueup run`
        held = Overrides.load(opts.engine.state_dir).suspended

        def narrow(plan: Plan, desired: DesiredState) -> Plan:
            return suspend_plan(plan, desired, held)

        async with pass_reconciler(opts.engine, opts.source, opts.policy, opts.routing) as rec:
            rec.image_keep = opts.image_keep
            rec.compose = opts.compose.host()
            if watch is not None:
                watch.watch_engine(rec.target.engine)
            return await rec.run_pass(
                rev=opts.source.rev,
                worktree=opts.worktree,
                apply=apply,
                prune=opts.prune,
                allow_empty=opts.allow_empty,
                plan_filter=narrow if held else None,
            )

    logs.configure(level="info" if apply and opts.output == "text" else "warning")
    try:
        return asyncio.run(one_pass())
    except TrueupError as exc:
        fail(str(exc))


def show_plan(result: PassResult, opts: PassOptions) -> None:
    from controller.cli import render

    if opts.output == "json":
        click.echo(render.plan_json_text(result.plan, result.problems))
        return
    click.echo(
        render.plan_text(
            result.plan,
            result.problems,
            colour=sys.stdout.isatty(),
            file_label=lambda name: display_path(opts.source.repo, name),
        )
    )


def show_routes(result: PassResult, opts: PassOptions, *, applied: bool) -> None:
    """The route table (text output) and how the routes stage went (stderr with json)."""
    from controller.cli import render

    table = result.routes or ()
    to_stderr = opts.output == "json"
    if not to_stderr and table:
        click.echo(render.routes_text(table))
    if opts.routing.router == "none":
        if table:
            click.echo(f"routes: {len(table)} computed, not pushed (--router none)", err=to_stderr)
        return
    if result.routes_error is not None:
        if applied:
            click.echo(
                f"FAILED routes: {result.routes_error}; the proxy serves stale routes "
                "(containers were reconciled; the next pass pushes them again)",
                err=to_stderr,
            )
        else:
            click.echo(f"warning: routes not compared: {result.routes_error}", err=True)
    elif applied:
        state = "pushed" if result.routes_pushed else "unchanged"
        click.echo(f"{'ok':6} routes: {len(table)} route(s) in caddy ({state})", err=to_stderr)


@click.command()
@options(COMMON, SOURCE, (WORKTREE, OUTPUT))
@reads(PassOptions.read)
def diff(opts: PassOptions) -> None:
    """Show what apply would change; change nothing.

    Exit 0 in sync, 1 changes pending (or deleting every app refused: out of sync, nothing
    deleted), 2 error (including a manifest that failed to load).
    With --router caddy, routes that differ from what Caddy serves are changes too (action
    "route" when nothing else about the app changes); an unreachable Caddy is a warning.
    """
    result = run_pass(opts, apply=False)
    show_plan(result, opts)
    show_routes(result, opts, applied=False)
    if result.problems:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if result.plan.in_sync and not result.plan.held else EXIT_CHANGES)


@click.command()
@options(COMMON, SOURCE, (OUTPUT,))
@click.option(
    "--prune/--no-prune", default=True, show_default=True, help="Remove apps gone from git."
)
@click.option("--allow-empty", is_flag=True, help="Allow a pass that deletes every app.")
@click.option(
    "--image-keep",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Images trueup built kept per app beyond those in use (older unused ones are removed).",
)
@reads(PassOptions.read)
def apply(opts: PassOptions) -> None:
    """Make the host match git at the branch tip (or --rev), once.

    Exit 0 when everything converged, 1 when an app failed, the routes could not be pushed
    (the containers still converge) or deleting every app was refused (no --allow-empty), 2 on
    an error (a manifest that failed to load is an error: the valid apps are applied first).
    """
    from controller.noop.record import recording

    with recording(opts.engine.state_dir) as watch:
        result = run_pass(opts, apply=True, watch=watch)
        code = _applied(result, opts)
        watch.finish(apply, opts, result, code, _converged(result, opts))
    sys.exit(code)


def _converged(result: PassResult, opts: PassOptions) -> Converged | None:
    """A pass whose changes all succeeded, as the no-op `apply` after it would be: the plan
    made again from the look at the engine after apply, when that plan is in sync, and what
    `apply` prints for it (so the no-op stamp can answer the next identical `apply`)."""
    import contextlib
    import io

    from controller.noop.record import Converged
    from controller.planning import PlanOptions
    from controller.reconciler import PassResult

    desired, after = result.desired, result.after
    if not result.outcomes or result.failed or result.problems or result.routes_error:
        return None
    if desired is None or after is None or opts.routing.router != "none":
        return None
    plan = after.plan(desired, PlanOptions(opts.prune, opts.allow_empty, None))
    if not plan.in_sync or plan.changes or plan.refused:
        return None
    noop = PassResult(
        result.revision, plan, [], desired=desired, observed=after, routes=plan.routes
    )
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        if _applied(noop, opts) != EXIT_OK:
            return None
    return Converged(noop, shown.getvalue())


def _applied(result: PassResult, opts: PassOptions) -> int:
    """Print what apply did; its exit code."""
    show_plan(result, opts)
    to_stderr = opts.output == "json"
    for outcome in result.outcomes:
        mark = "ok" if outcome.ok else "FAILED"
        line = f"{mark:6} {outcome.app} {outcome.action} ({outcome.duration_s:.1f}s)"
        if not outcome.ok:
            line += f": {outcome.message}"
        click.echo(line, err=to_stderr)
    for change in result.plan.refused:  # still running although git no longer declares them
        click.echo(f"REFUSED {change.app} delete: {change.reasons[-1]}", err=to_stderr)
    show_routes(result, opts, applied=True)
    if result.problems:
        return EXIT_ERROR
    failed = result.failed or result.routes_error or result.plan.refused
    return EXIT_CHANGES if failed or result.plan.held else EXIT_OK
