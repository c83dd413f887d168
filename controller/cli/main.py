"""The `trueup` command group: it registers each command group's commands (a stable contract:
scripts and CI depend on its options and exit codes).

- `controller.cli.oneshot`: validate, diff, apply, schema (read git once, exit);
- `controller.cli.inspect`: status, logs, history (look, change nothing);
- `controller.cli.run`: run (the controller);
- `controller.cli.notify`: notify test (send a test message);
- `controller.cli.override`: suspend, resume (an app's runtime override);
- `controller.cli.convert`: convert (a compose file as trueup manifests);
- `controller.cli.options`: every option, declared once, and the typed groups they are read
  into; `controller.cli.connect`: where a command opens the engine and builds a Reconciler.

Each command is thin: it parses options, calls the stage functions, renders, and maps trueup's
errors to exit codes. No traceback ever reaches a user; an unexpected one is a bug.
"""

from __future__ import annotations

import click

from controller import __version__
from controller.cli.convert import convert
from controller.cli.inspect import history, logs, status
from controller.cli.notify import notify
from controller.cli.oneshot import apply, diff, schema, validate
from controller.cli.override import resume, suspend
from controller.cli.run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trueup")
def main() -> None:
    """trueup keeps the containers on a host matched to the manifests committed in git."""


for _command in (
    validate, schema, diff, apply, convert, status, logs, run, history, notify, suspend, resume,
):  # fmt: skip
    main.add_command(_command)
