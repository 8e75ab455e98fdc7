"""What the integrity chain costs: hashing every file of every artifact, and btseg-check.

    python benchmarks/integrity_cost.py [PACKAGE] [--n 20]
"""

from __future__ import annotations

import argparse
import time

from btseg import defaults
from btseg.package import load_package
from btseg.package_check import check_package


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("package", nargs="?", default=str(defaults.DEFAULT_PACKAGE))
    ap.add_argument("--n", type=int, default=20)
    a = ap.parse_args()
    pkg = load_package(a.package, check_architecture=False)
    recs = pkg.artifacts()
    t = time.perf_counter()
    for _ in range(a.n):
        for r in recs:
            pkg.verify_artifact(r)
    mb = sum(r.size_bytes for r in recs) / 1e6
    print(f"verify_artifact x {len(recs)} artifacts ({mb:.2f} MB): {(time.perf_counter() - t) / a.n * 1e3:.1f} ms")
    from btseg import integrity

    listed = hashed = 0.0  # the two parts of verify_artifact, interleaved in one run (issue 20)
    for _ in range(a.n):
        for r in recs:
            t = time.perf_counter()
            for f in r.files:
                integrity.check_file(pkg.root, f["file"], f["sha256"], f["size_bytes"])
            t1 = time.perf_counter()
            integrity.check_listed(pkg.root, r.file, [f["file"] for f in r.files])
            hashed, listed = hashed + t1 - t, listed + time.perf_counter() - t1
    print(f"  of which hashing {hashed / a.n * 1e3:.1f} ms, every opened file listed (ONNX external-data "
          f"walk) {listed / a.n * 1e3:.1f} ms")
    t = time.perf_counter()
    for _ in range(a.n):
        check_package(a.package)
    print(f"check_package (weights, schemas, {len(recs)} artifacts): {(time.perf_counter() - t) / a.n * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
