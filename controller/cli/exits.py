"""Exit codes of the command line (a contract: scripts and CI read them) and how a command
fails: a line for a person on stderr, never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

# Exit codes shared by validate / diff / apply (see README, "Command line").
EXIT_OK = 0
EXIT_CHANGES = 1  # diff: changes pending; validate: invalid; apply: an app failed
EXIT_ERROR = 2


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print an error for a person and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
