"""Every example in README.md and docs/ runs, or says why it cannot.

Each ```bash / ```sh / ```python block carries a marker on the line before its fence:

* ``<!-- example: run SETUP -->``: run here, in a fresh folder prepared by SETUP (below), at
  tiny sizes (:data:`TINY` rewrites ``--preset demo`` to ``tiny``, 300 images to 16, ...);
  a shell block runs under ``bash -e`` with every ``btseg-*`` command being this checkout's,
  a Python block runs as a script.  It must exit 0.
* ``<!-- example: illustrative REASON -->``: not run (needs a GPU, real data, a capture
  device, a network peer, or takes minutes); the reason is required and shown to readers.

A new block without a marker fails :func:`test_every_example_is_run_or_says_why`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<marker><!-- example: (?P<kind>run|illustrative)(?P<arg>[^>]*?)-->\n)?```(?P<lang>bash|sh|python)\n"
                   r"(?P<body>.*?)^```", re.S | re.M)
# tiny sizes for a test run: the same commands, seconds instead of minutes
TINY = [(r"--preset (demo|paper)", "--preset tiny"), (r"--n \d+", "--n 16"), (r"--size (128|256)", "--size 64"),
        (r"--calib-size \d+", "--calib-size 8"), (r"--verify-n \d+", "--verify-n 8"), (r"\.venv/bin/", "")]
SCRIPTS = {"btseg-data": "data", "btseg-distill": "distill", "btseg-export": "export", "btseg-predict": "predict",
           "btseg-bench": "bench", "btseg-demo": "demo", "btseg-check": "check", "btseg-serve": "serve"}


def blocks() -> list[tuple[str, int, dict[str, str]]]:
    out = []
    for rel in DOCS:
        text = (ROOT / rel).read_text()
        for m in FENCE.finditer(text):
            out.append((rel, text[:m.start("lang")].count("\n") + 1, m.groupdict()))
    return out


def test_every_example_is_run_or_says_why():
    missing = [f"{rel}:{line}" for rel, line, b in blocks() if not b["kind"]]
    assert not missing, f"examples with no '<!-- example: run SETUP -->' or 'illustrative REASON' marker: {missing}"
    vague = [f"{rel}:{line}" for rel, line, b in blocks() if b["kind"] == "illustrative" and len(b["arg"].strip()) < 8]
    assert not vague, f"illustrative examples must say why: {vague}"


def _setup(kind: str, where: Path) -> None:
    """Prepare the folder an example expects: a phantom in the BUSI layout under the names the
    docs use, and/or a model package at runs/demo/student (a copy of the bundled one)."""
    from btseg import defaults
    from btseg.data.phantom import synthesize

    if kind in ("phantom", "package"):  # under the names the docs use; ./phantom is left for `synth --out phantom`
        synthesize(where / ".phantom", n=16, size=64, seed=0, workers=1)
        for alias in ("Dataset_BUSI_with_GT", "data"):
            (where / alias).symlink_to(where / ".phantom", target_is_directory=True)
    if kind == "package":
        shutil.copytree(defaults.default_package(), where / "runs" / "demo" / "student")
        samples = defaults.sample_images()
        shutil.copy(samples[0], where / "scan.png")
    if kind not in ("none", "phantom", "package"):
        raise AssertionError(f"unknown example setup {kind!r}: none, phantom or package")


def _shell(body: str) -> str:
    shims = "\n".join(f'{name}() {{ "{sys.executable}" -m btseg.cli.{mod} "$@"; }}' for name, mod in SCRIPTS.items())
    return f"set -euo pipefail\n{shims}\n{body}"


RUN = [(rel, line, b) for rel, line, b in blocks() if b["kind"] == "run"]


@pytest.mark.parametrize("rel,line,block", RUN, ids=[f"{r}:{n}" for r, n, _ in RUN])
def test_example_runs(rel, line, block, tmp_path):
    setup = (block["arg"].split() or ["none"])[0]
    _setup(setup, tmp_path)
    body = block["body"]
    for pattern, repl in TINY:
        body = re.sub(pattern, repl, body)
    # a bench in an example is timed briefly here (its numbers are not what is being checked)
    body = re.sub(r"^(\s*btseg-bench(?:(?!--iters|--duration)[^\n])*?)(\s*#.*)?$",
                  r"\1 --iters 3 --warmup 1 --no-memory --no-peak\2", body, flags=re.M)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    if block["lang"] == "python":
        cmd = [sys.executable, "-c", body]
    else:
        cmd = ["bash", "-c", _shell(body)]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{rel}:{line} exited {r.returncode}:\n{body}\n--- stderr:\n{r.stderr[-3000:]}"
