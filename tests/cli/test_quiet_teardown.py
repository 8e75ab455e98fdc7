"""A finished command is not killed by a signal during the interpreter's teardown
(:func:`btseg.cli.common.quiet_teardown`); fault injection with a real SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# an exit hook registered *before* quiet_teardown runs *after* it (atexit is last in, first
# out), like the native teardown that follows CPython's reset of the signal handlers
SCRIPT = textwrap.dedent("""
    import atexit, os, signal, sys, time
    from pathlib import Path
    from btseg.cli.common import quiet_teardown
    def late():
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), sig)
        time.sleep(0.2)
        Path(sys.argv[1]).write_text("teardown finished")
    atexit.register(late)
    if sys.argv[2] == "quiet":
        quiet_teardown()
        quiet_teardown()  # a command run twice in one process registers one hook
    sys.exit(int(sys.argv[3]))
""")


def _run(tmp_path: Path, mode: str, code: int) -> tuple[int, Path]:
    mark = tmp_path / f"{mode}-{code}"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(mark), mode, str(code)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    return r.returncode, mark


@pytest.mark.parametrize("code", [0, 1, 2])
def test_a_signal_in_teardown_keeps_the_commands_own_exit_code(tmp_path, code):
    rc, mark = _run(tmp_path, "quiet", code)
    assert rc == code and mark.read_text() == "teardown finished"


def test_without_it_the_same_signal_kills_the_process(tmp_path):
    """The control: the fault injected is real, and it is what the hook prevents."""
    rc, mark = _run(tmp_path, "plain", 0)
    assert rc == -signal.SIGTERM and not mark.exists()
