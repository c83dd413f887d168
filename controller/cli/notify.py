"""`trueup notify test [DESTINATION]`: send a test message to the configured destinations.

Reads the ``notifications:`` section of the config file (as `trueup run` does), sends one
test message to each destination (or the one named) with the usual retries, and prints each
answer; exit 0 when every one was delivered, 1 when one failed, 2 on a config error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from controller.cli.exits import fail
from controller.cli.options import COMMON, CONFIG, options
from controller.errors import TrueupError


@click.group()
@options(COMMON, settings=True)
def notify(**_: object) -> None:
    """Notification destinations (the common options are accepted; give them to `test`)."""


@notify.command("test")
@click.argument("destination", required=False)
@CONFIG.with_help("YAML settings file of `trueup run` (its notifications: section).")
@options(COMMON, settings=True)
def test(destination: str | None, config_file: Path | None, **overrides: object) -> None:
    """Send a test message to DESTINATION (default: every destination) and show the answer."""
    from controller.notify.delivery import with_retries
    from controller.notify.events import Event
    from controller.notify.message import Notice
    from controller.notify.setup import make_destinations
    from controller.settings import load_settings

    try:
        settings = load_settings(config_file, overrides)
        destinations = make_destinations(settings.notifications)
    except TrueupError as exc:
        fail(str(exc))
    chosen = [d for d in destinations if destination in (None, d.name)]
    if not chosen:
        names = ", ".join(d.name for d in destinations) or "none configured"
        fail(f"no destination {destination!r} (destinations: {names})")
    notice = Notice(settings.instance, None, "", (Event("trueup", "deployed", "test message"),))
    failed = False
    for dest in chosen:
        result = asyncio.run(with_retries(lambda d=dest: d.send(notice)))  # type: ignore[misc]
        click.echo(f"{dest.name}: {result.outcome} {result.detail}".rstrip())
        failed |= result.outcome != "ok"
    raise SystemExit(1 if failed else 0)
