"""`trueup run`: the controller itself, kept running until SIGTERM/SIGINT.

Its options are the settings form of the shared ones (see `controller.cli.options`): a flag
given overrides the config file and the ``TRUEUP_*`` environment, one not given arrives as None
and leaves their value. `controller.settings` checks them all as it checks the config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from controller.cli.exits import fail
from controller.cli.groups import Params, optional_path
from controller.cli.options import (
    API_READ_TOKEN_FILE,
    COMMON,
    CONFIG,
    LISTEN,
    PATH,
    REPO,
    Option,
    options,
    reads,
)
from controller.errors import TrueupError

INTERVAL = Option("--interval", help="Resync (and remote poll) period, e.g. 30s.")
API_TOKEN_FILE = Option(
    "--api-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Bearer token of the API's actions: reconcile, suspend, resume, apply (without it, "
    "they are disabled).",
)
WEBHOOK_SECRET_FILE = Option(
    "--webhook-secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Shared secret of the /hooks/* webhooks (without it, webhooks are refused).",
)
HOOKS_LISTEN = Option(
    "--hooks-listen", help="Serve /hooks/* alone on this address (and no longer on --listen)."
)
WEBHOOK_MAX_BODY = Option(
    "--webhook-max-body", help="Largest webhook body accepted, e.g. 256Ki (the default) or 1Mi."
)
SYNC = Option(
    "--sync",
    type=click.Choice(["auto", "manual"]),
    help="auto (default): apply each new commit; manual: plan it and wait for POST "
    "/api/v1/apply to approve it (healing keeps applying the approved revision).",
)
IMAGE_KEEP = Option(
    "--image-keep",
    help="Images trueup built kept per app beyond those in use (default 3; older unused ones "
    "are removed after a pass that built or replaced images).",
)

#: Every option of `trueup run` that is a setting (its destination is the settings key).
SETTINGS = (
    REPO,
    PATH,
    INTERVAL,
    LISTEN,
    *COMMON,
    API_TOKEN_FILE,
    WEBHOOK_SECRET_FILE,
    API_READ_TOKEN_FILE,
    HOOKS_LISTEN,
    WEBHOOK_MAX_BODY,
    IMAGE_KEEP,
    SYNC,
)


@dataclass(frozen=True)
class RunOptions:
    """The config file, and the settings the flags give (None: not given)."""

    config_file: Path | None
    overrides: Mapping[str, object]

    @classmethod
    def read(cls, params: Params) -> RunOptions:
        overrides = {k: v for k, v in params.items() if k != "config_file"}
        return cls(optional_path(params, "config_file"), overrides)


@click.command()
@CONFIG.with_help(
    "YAML settings file (see README, Configuration); env TRUEUP_* and flags override it."
)
@options(SETTINGS, settings=True)
@reads(RunOptions.read)
def run(opts: RunOptions) -> None:
    """Keep the host converged with git until stopped (SIGTERM/SIGINT exit 0; apps keep running).

    An option given overrides the config file's key and TRUEUP_<KEY> (a repeatable one
    replaces the configured list); one not given leaves their value.
    """
    import asyncio

    from controller.daemon import logs
    from controller.daemon import run as daemon
    from controller.daemon.lock import StateLock
    from controller.settings import load_settings

    try:
        settings = load_settings(opts.config_file, opts.overrides)
    except TrueupError as exc:
        fail(str(exc))
    fmt = settings.log_format
    logs.configure(level=settings.log_level, json=None if fmt == "auto" else fmt == "json")
    lock = StateLock(settings.state_dir)
    try:
        lock.acquire()
    except TrueupError as exc:
        fail(str(exc))
    try:
        asyncio.run(daemon.serve(settings))
    except TrueupError as exc:
        fail(str(exc))
    finally:
        lock.release()
