"""Peak memory of reading a small PNG whose header declares 20000x20000 (issue 9).

Writes a ~390 KB PNG of 400 MP zeros, then reads it with ``btseg.runtime.inputs.read_image``
in a fresh process and prints the outcome and that process's peak RSS.

    python benchmarks/bounded_inputs.py            # this checkout
    PYTHONPATH=<other checkout> python benchmarks/bounded_inputs.py   # to compare
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

CHILD = """
import resource, sys
from btseg.runtime.inputs import read_image
try:
    read_image(sys.argv[1]); outcome = "decoded"
except Exception as e:
    outcome = type(e).__name__ + ": " + str(e).split(": ", 1)[-1]
print(outcome)
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
"""


def bomb_png(path: Path, side: int = 20000) -> int:
    """Write a gray 8-bit PNG of side x side zeros; returns its size in bytes."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    data = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    path.write_bytes(png)
    return len(png)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "20000x20000.png"
        size = bomb_png(p)
        print(f"{p.name}: {size / 1e3:.0f} KB on disk")
        out = subprocess.run([sys.executable, "-c", CHILD, str(p)], capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip()[-500:])


if __name__ == "__main__":
    main()
