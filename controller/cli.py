"""The `trueup` command line (click). A stable contract: scripts and CI depend on its exit codes.

Each command is thin: it parses options, calls the stage functions, renders, and maps trueup's
errors to exit codes. No traceback ever reaches a user; an unexpected one is a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from controller import __version__

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
