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
    t = time.perf_counter()
    for _ in range(a.n):
        check_package(a.package)
    print(f"check_package (weights, schemas, {len(recs)} artifacts): {(time.perf_counter() - t) / a.n * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
