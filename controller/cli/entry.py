"""The `trueup` console script: a repeated no-op `apply` answered from its stamp
(`controller.noop.fast`), every other invocation (and any doubt) the regular command group.

Imports the standard library and `controller.noop` only until the regular command is needed.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from controller.noop.fast import answer

        found = answer(sys.argv[1:], os.environ)
    except Exception:  # any doubt at all: the regular path decides, and restamps
        found = None
    if found is not None:
        stdout, log = found
        sys.stdout.write(stdout)
        sys.stdout.flush()
        if log:
            sys.stderr.write(log + "\n")
        sys.exit(0)
    from controller.cli.main import main as regular

    regular()
