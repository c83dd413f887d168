"""How a `trueup` process ends: its collector frozen before the interpreter's finalisation
(`controller.cli.main`), with its output and exit code as they were."""

from __future__ import annotations

import subprocess
import sys

# An atexit hook registered before `controller.cli.main` is imported runs after the hooks it
# registers (atexit is last-in, first-out), so it sees the collector as finalisation will.
PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))
from controller.cli.main import main
sys.argv = ["trueup", "schema", "--help"]
main()
"""


def test_a_trueup_process_exits_without_collecting_its_heap() -> None:
    """The interpreter's final collections no longer traverse the heap (measured ~0.1 s of a
    one-service apply), and the command's output and exit code are unchanged."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Write the JSON Schema of manifest v1" in done.stdout
    assert done.stdout.rstrip().endswith("frozen True")
