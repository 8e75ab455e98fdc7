"""Import a script that is not part of the package (benchmarks/*.py, tools/*.py) by its path,
so its functions can be tested as they are shipped."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(relpath: str) -> ModuleType:
    """The module at ``ROOT / relpath`` (e.g. ``"benchmarks/ablation.py"``), registered under its
    stem in ``sys.modules`` so the script's own sibling imports resolve to it."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod
