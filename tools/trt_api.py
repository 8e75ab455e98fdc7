"""Import the real TensorRT Python bindings without a GPU, and list their API.

The ``tensorrt_cu12_bindings`` / ``tensorrt_cu13_bindings`` wheels (about 1.3 MB each) hold
only the pybind11 module; it links against ``libnvinfer``, ``libnvinfer_plugin`` and
``libnvonnxparser`` for nine C entry points (``nm -D --undefined-only tensorrt.so``).  A stub
shared library compiled here with gcc provides them (every factory returns NULL), so the
module imports, every class, enum and method signature can be read, and any code runs up to
the first call that needs the real library (``trt.Builder(logger)`` then raises
``TypeError: pybind11::init(): factory function returned nullptr``).

Usage::

    python tools/trt_api.py                    # download the wheels, write the name list
    python tools/trt_api.py --wheels DIR       # use wheels already in DIR

writes ``tests/export/data/tensorrt_api.json``: per TensorRT version, every public class
with its members, enum values and method signatures.  The conformance test
(``tests/export/test_tensorrt_conformance.py``) checks btseg's TensorRT code against it,
and, where the wheels can be had, imports them through the stub and runs the builder code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES_JSON = ROOT / "tests" / "export" / "data" / "tensorrt_api.json"
CACHE = ROOT / ".trt-wheels"  # gitignored
# the releases btseg supports at both ends of each major: JetPack 6 ships 10.x; pip gives 11.x
WHEELS = ("tensorrt_cu12_bindings==10.0.1", "tensorrt_cu13_bindings==10.16.1.11",
          "tensorrt_cu13_bindings==11.0.0.114", "tensorrt_cu13_bindings==11.4.0.106")
LIBS = ("nvinfer", "nvinfer_plugin", "nvonnxparser")
STUB_C = r"""
#include <stddef.h>
#include <stdint.h>
/* the C entry points tensorrt.so needs; factories return NULL (no GPU, no TensorRT) */
void* createInferBuilder_INTERNAL(void* logger, int32_t version) { return NULL; }
void* createInferRefitter_INTERNAL(void* engine, void* logger, int32_t version) { return NULL; }
void* createInferRuntime_INTERNAL(void* logger, int32_t version) { return NULL; }
void* createNvOnnxParserRefitter_INTERNAL(void* refitter, void* logger, int32_t version) { return NULL; }
void* createNvOnnxParser_INTERNAL(void* network, void* logger, int32_t version) { return NULL; }
void* getBuilderPluginRegistry(int32_t capability) { return NULL; }
int32_t getNvOnnxParserVersion(void) { return 0; }
void* getPluginRegistry(void) { return NULL; }
int initLibNvInferPlugins(void* logger, const char* ns) { return 0; }
"""


def build_stub(dest: Path) -> Path:
    """Compile the stub and name it like each TensorRT library of majors 10 and 11."""
    dest.mkdir(parents=True, exist_ok=True)
    src, lib = dest / "trtstub.c", dest / "libtrtstub.so"
    src.write_text(STUB_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, capture_output=True)
    for major in (10, 11):
        for name in LIBS:
            link = dest / f"lib{name}.so.{major}"
            if not link.exists():
                link.symlink_to(lib.name)
    return dest


def extract(wheel: Path, dest: Path) -> Path:
    """Unpack a bindings wheel; returns the directory to put on PYTHONPATH."""
    out = dest / wheel.stem
    if not (out / "tensorrt_bindings").is_dir():
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out)
    return out


def download(specs: tuple[str, ...] = WHEELS, dest: Path = CACHE, strict: bool = True) -> list[Path]:
    """``pip download --no-deps`` each spec into ``dest`` (skips what is there); the wheels found.

    ``strict=False`` goes on past a spec pip cannot get (no wheel for this Python, offline)."""
    dest.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        name, ver = spec.split("==")
        if not list(dest.glob(f"{name}-{ver}-*.whl")):
            try:
                subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec, "-d", str(dest)],
                               check=True, capture_output=True, timeout=300)
            except (subprocess.SubprocessError, OSError):
                if strict:
                    raise
    return sorted(p for s in specs for p in dest.glob(f"{s.split('==')[0]}-{s.split('==')[1]}-*.whl"))


def stub_env(site: Path, stub: Path) -> dict[str, str]:
    """Environment for a child process that imports ``tensorrt`` from ``site`` over the stub."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(stub), env.get("LD_LIBRARY_PATH", "")) if p)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def import_tensorrt():
    """In a stubbed child: ``tensorrt_bindings`` registered as ``tensorrt`` (what the
    ``tensorrt-cuXX`` wheel's top-level package does)."""
    import tensorrt_bindings

    sys.modules["tensorrt"] = tensorrt_bindings
    return tensorrt_bindings


def _signatures(fn: object, name: str) -> list[str]:
    doc = getattr(fn, "__doc__", None) or ""
    sigs = [line.strip() for line in doc.splitlines()
            if re.match(rf"\s*(\d+\.\s*)?{re.escape(name)}\(", line)]
    return [re.sub(r"^\d+\.\s*", "", re.sub(r"tensorrt(_bindings)?\.tensorrt\.", "", s)) for s in sigs]


def introspect() -> dict:
    """Classes, members, enum values and method signatures of the imported bindings."""
    trt = import_tensorrt()
    out: dict = {"version": trt.__version__, "classes": {}, "functions": {}}
    for name in sorted(dir(trt)):
        obj = getattr(trt, name)
        if name.startswith("_"):
            continue
        if isinstance(obj, type):
            entry: dict = {"members": sorted(m for m in dir(obj) if not m.startswith("_") or m == "__init__")}
            if hasattr(obj, "__members__"):
                entry["enum"] = sorted(obj.__members__)
            else:  # enums' methods are pybind11 boilerplate
                sigs = {m: _signatures(getattr(obj, m, None), m) for m in entry["members"]
                        if callable(getattr(obj, m, None))}
                entry["signatures"] = {m: s for m, s in sigs.items() if s}
            out["classes"][name] = entry
        elif callable(obj):
            out["functions"][name] = _signatures(obj, name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, help="directory holding the bindings wheels (default: download)")
    ap.add_argument("--out", type=Path, default=NAMES_JSON)
    ap.add_argument("--introspect", action="store_true", help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args(argv)
    if args.introspect:
        json.dump(introspect(), sys.stdout)
        return 0
    wheels = download(WHEELS, args.wheels or CACHE)
    work = (args.wheels or CACHE) / "unpacked"
    stub = build_stub(work / "stub")
    apis = {}
    for w in wheels:
        r = subprocess.run([sys.executable, __file__, "--introspect"], env=stub_env(extract(w, work), stub),
                           capture_output=True, text=True, timeout=300, check=True)
        api = json.loads(r.stdout)
        api["wheel"] = w.name
        apis[api["version"]] = api
        print(f"{w.name}: {len(api['classes'])} classes")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(apis, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
