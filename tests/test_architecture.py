"""The layer rule of docs/architecture.md, read from the source: a module imports only from
its own layer or below, the runtime and the package contract never import the data loaders,
training, export or bench, and no module of the runtime imports torch at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "btseg"

# bottom to top; see docs/architecture.md
LAYERS = {
    "errors": 0, "io": 0, "provenance": 0, "imageio": 0, "metrics": 0, "stats": 0, "defaults": 0, "specs": 0,
    "preprocess": 0, "contract": 0, "layout": 0, "machine": 0, "timing": 0,
    "models": 1,
    "data": 2,
    "package": 3, "schema": 3, "records": 3, "integrity": 3, "package_check": 3, "onnx_refs": 3,
    "runtime": 4,
    "dicom": 5,
    "distill": 6,
    "export": 7,
    "bench": 8,
    "cli": 9,
}
# below in rank, but kept out all the same: a cart installs the runtime without them
FORBIDDEN = {
    "runtime": {"data", "models", "distill", "export", "bench", "cli", "dicom"},
    "dicom": {"data", "models", "distill", "export", "bench", "cli"},
    "package": {"data", "distill", "export", "bench", "cli"},
    "schema": {"data", "models", "distill", "export", "bench", "cli"},
    "records": {"data", "models", "distill", "export", "bench", "cli"},
    "integrity": {"data", "models", "distill", "export", "bench", "cli"},
    "onnx_refs": {"data", "models", "distill", "export", "bench", "cli"},
    "package_check": {"data", "distill", "export", "bench", "cli"},
    "preprocess": {"data", "models"},
}


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out.append((name, path))
    return out


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno, id(node) in top_level))
    return found


def violations() -> list[str]:
    bad = []
    for name, path in modules():
        own = component(name)
        if own not in LAYERS:
            if own:  # a new top-level module must be placed in a layer
                bad.append(f"{name}: not in any layer of tests/test_architecture.py")
            continue
        for target, line, top in imports(path):
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if target.startswith("btseg."):
                dep = component(target)
                if dep not in LAYERS:
                    continue
                if LAYERS[dep] > LAYERS[own] or dep in FORBIDDEN.get(own, ()):
                    bad.append(f"{where}: {own} imports {target}")
            elif target.split(".")[0] == "torch" and top and own in ("runtime", "package", "preprocess", "dicom"):
                bad.append(f"{where}: {own} imports torch at import time")
    return bad


def test_every_import_respects_the_layers():
    assert violations() == []


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    # the rule is only worth something if it can fail: plant a runtime module importing the CLI
    pkg = tmp_path / "btseg" / "runtime"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text("import torch\n\ndef f():\n    from btseg.cli.common import console\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path / "btseg")
    found = violations()
    assert any("runtime imports btseg.cli.common" in v for v in found)
    assert any("imports torch at import time" in v for v in found)


@pytest.mark.parametrize("name", ["btseg.runtime", "btseg.package", "btseg.cli.predict"])
def test_runtime_side_imports_no_torch(name):
    import subprocess
    import sys

    code = f"import sys, {name}; sys.exit(1 if 'torch' in sys.modules or 'btseg.data' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize("module, args", [("btseg.cli.distill", ["all", "--data", "x", "--out", "y"]),
                                          ("btseg.cli.export", []), ("btseg.cli.bench", [])])
def test_a_command_needing_a_missing_extra_names_it(module, args, monkeypatch):
    import importlib

    from click.testing import CliRunner

    from btseg.cli import common

    monkeypatch.setitem(common.EXTRAS, "train", ("torch", "btseg_no_such_package"))
    r = CliRunner().invoke(importlib.import_module(module).main, args)
    assert r.exit_code == 2
    assert "needs btseg_no_such_package, which this install lacks: pip install 'btseg[train]'" in r.output
