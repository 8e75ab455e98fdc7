"""examples/cart_loop.py runs as documented (the embedding example must not rot)."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cart_loop.py"


def test_cart_loop_runs_on_synthetic_frames():
    r = subprocess.run([sys.executable, str(EXAMPLE), "--frames", "20", "--threads", "1"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "captured 20 frames" in r.stdout and "p90" in r.stdout
