"""No import cycle between btseg modules, lazy (function-level) imports included.

A lazy import hides a cycle from Python's import machinery but not from a reader: the two
modules still need each other.  The graph is read from the source (every ``import`` and
``from ... import``, at any depth, relative ones resolved); an edge goes to the module named
(``from btseg.data import busi`` -> ``btseg.data.busi``, ``from btseg.data import Dataset`` ->
``btseg.data``); a package's ``__init__`` that a submodule implies is not an edge.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "btseg"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root`` (a ``btseg`` directory)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        out[".".join(rel.parts).removesuffix(".__init__")] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The btseg modules ``name`` (at ``path``) imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {m for m in found if m in known and m != name}


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = module_files(root)
    return {name: imported(name, path, set(files)) for name, path in files.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(g):
        if start in index:
            continue
        work = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checker_finds_cycles_in_a_synthetic_graph():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"g"}}
    assert cycles(g) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_a_planted_lazy_cycle_in_a_copy_of_btseg_is_found(tmp_path):
    # the two cycles this test was written for, planted again: a loader imported lazily by the
    # module it builds on, and a relative import closing a runtime loop
    copy = tmp_path / "btseg"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("assets", "__pycache__"))
    with (copy / "data" / "dataset.py").open("a") as f:
        f.write("\n\ndef _planted():\n    from btseg.data import busi\n    return busi\n")
    with (copy / "runtime" / "arrays.py").open("a") as f:
        f.write("\n\ndef _planted():\n    from .regions import plan_regions\n    return plan_regions\n")
    found = cycles(graph(copy))
    assert any({"btseg.data.dataset", "btseg.data.busi"} <= set(c) for c in found)
    assert any({"btseg.runtime.arrays", "btseg.runtime.regions"} <= set(c) for c in found)
