"""Where a measured number came from: the commit and a hash of the code that made it.

Every results file in ``benchmarks/results/`` that README.md, docs/ or RESULTS.md quote
carries a ``provenance`` block (:func:`stamp`).  ``tools/docs_numbers.py`` fills the quoted
numbers from the files and, with ``tests/test_docs_numbers.py``, refuses a file whose code has
changed since it was made (:func:`stale`): the change that moves a number must re-measure it.

The hash is over the *code*, not the text: each Python file is parsed and its AST dumped
without docstrings, so comments, formatting and docstrings do not make a number stale, while
any change to what runs does.  Other files (JSON presets, shell) are hashed byte for byte.

Example::

    >>> from btseg.provenance import code_hash
    >>> len(code_hash(["btseg/metrics.py"]))
    64
"""

from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import subprocess
from pathlib import Path
from typing import Any, Iterable

from btseg.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def _files(paths: Iterable[str], root: Path) -> list[Path]:
    out: list[Path] = []
    for rel in paths:
        p = root / rel
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".py", ".json")
                          and "__pycache__" not in f.parts)
        elif p.is_file():
            out.append(p)
        else:
            raise ConfigError(f"provenance: code path {rel!r} does not exist under {root}")
    return out


def _code_text(path: Path) -> bytes:
    if path.suffix != ".py":
        return path.read_bytes()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):  # drop docstrings: documentation does not change a measurement
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


def code_hash(paths: Iterable[str], root: Path = ROOT) -> str:
    """sha256 over the code (AST without docstrings) of ``paths`` (files or folders, relative
    to the repository root), in a stable order, each file's relative path included."""
    h = hashlib.sha256()
    for f in _files(paths, root):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + _code_text(f) + b"\0")
    return h.hexdigest()


def _commit(root: Path) -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None


def stamp(command: str, code_paths: list[str], root: Path = ROOT) -> dict[str, Any]:
    """The ``provenance`` block a results file carries: the command that made it, the commit
    it ran on, and :func:`code_hash` of the code that decides its numbers."""
    return {"command": command, "commit": _commit(root), "code_paths": list(code_paths),
            "code_hash": code_hash(code_paths, root),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def stale(provenance: dict[str, Any] | None, root: Path = ROOT) -> str | None:
    """Why a results file's numbers may no longer hold (``None`` when they do)."""
    if not provenance or "code_hash" not in provenance:
        return "no provenance block (command, commit, code hash): re-measure with its script"
    now = code_hash(provenance["code_paths"], root)
    if now != provenance["code_hash"]:
        return (f"made at commit {str(provenance.get('commit'))[:10]} with code that has changed since "
                f"({', '.join(provenance['code_paths'])}): re-run `{provenance['command']}`")
    return None
