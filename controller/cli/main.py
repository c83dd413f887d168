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

The one-shot commands are imported with the group; the others (`LAZY`) only when they are
looked up (run, or listed by ``--help``), so ``trueup apply`` does not pay for importing what
status, logs, history, notify, run and convert need.

At exit the process freezes its garbage collector (`gc.freeze`, an `atexit` hook) before
the interpreter's finalisation, which otherwise runs full collections over the whole heap
(pydantic's schemas, the modules): measured ~0.1 s of every one-service `apply` after its
last engine request. Nothing is skipped: the atexit hooks (logging's flush included) still
run, stdout and stderr are still flushed, the exit code is unchanged; only the memory the
operating system takes back anyway is no longer traversed.
"""

from __future__ import annotations

import atexit
import gc
import importlib
from collections.abc import Iterator, Mapping, MutableMapping

import click

from controller import __version__
from controller.cli.oneshot import apply, diff, schema, validate

LAZY = {
    "convert": "controller.cli.convert",
    "history": "controller.cli.inspect",
    "logs": "controller.cli.inspect",
    "notify": "controller.cli.notify",
    "resume": "controller.cli.override",
    "run": "controller.cli.run",
    "status": "controller.cli.inspect",
    "suspend": "controller.cli.override",
}
"""Command name -> the module that defines it (as an attribute of the same name)."""


class Commands(MutableMapping[str, click.Command]):
    """A group's commands by name; a `LAZY` one is imported the first time it is read."""

    def __init__(self, lazy: Mapping[str, str]) -> None:
        self._loaded: dict[str, click.Command] = {}
        self._lazy = dict(lazy)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._lazy:
            command = getattr(importlib.import_module(self._lazy[name]), name)
            assert isinstance(command, click.Command), name
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._lazy.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._lazy.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._loaded) | set(self._lazy)))

    def __len__(self) -> int:
        return len(set(self._loaded) | set(self._lazy))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trueup")
def main() -> None:
    """trueup keeps the containers on a host matched to the manifests committed in git."""


atexit.register(gc.freeze)  # runs before the interpreter's final collections (see above)

main.commands = Commands(LAZY)
for _command in (validate, schema, diff, apply):
    main.add_command(_command)
