#!/usr/bin/env python
"""Fill the measured numbers in README.md, docs/ and RESULTS.md from benchmarks/results/.

A number in the docs that describes a measurement sits between markers and is written by
this script, never by hand (``make docs``)::

    lesion Dice <!-- n:demo.json:models.student.dice_lesion:.3f -->0.951<!-- /n -->

    <!-- table:demo-results -->
    | model | ... |            <- rendered from benchmarks/results/demo.json
    <!-- /table -->

``n:FILE:PATH:FORMAT``: FILE under ``benchmarks/results/``, PATH dotted keys (list indices as
numbers; keys may contain spaces, not dots or colons), FORMAT a Python format spec, or ``kofn``
for a ``[k, n]`` pair or ``{"k": .., "n": ..}`` ("3 of 40").
``table:NAME`` blocks come from the renderers in :data:`TABLES`.

Every results file quoted must carry a ``provenance`` block (:mod:`btseg.provenance`) whose
code hash matches the code today; otherwise the docs are refused as stale, naming the
command that re-measures them.  ``--check`` changes nothing and exits 1 on any difference
(``tests/test_docs_numbers.py`` runs it).

    python tools/docs_numbers.py           # rewrite the marked numbers
    python tools/docs_numbers.py --check   # exit 1 and list what is stale or differs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from btseg.io import write_json  # noqa: E402
from btseg.provenance import code_hash, stale  # noqa: E402
from btseg.stats import proportion_ci  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DOCS = ["README.md", "benchmarks/RESULTS.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
INLINE = re.compile(r"<!-- n:([^:\s]+):([^:]+?):([^\s:]*?) -->(.*?)<!-- /n -->", re.S)
BLOCK = re.compile(r"(<!-- table:([\w-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


def lookup(doc: Any, path: str) -> Any:
    """``doc`` at a dotted ``path`` (list indices as numbers); KeyError naming the missing step."""
    cur = doc
    for step in path.split("."):
        if isinstance(cur, list) and step.lstrip("-").isdigit():
            cur = cur[int(step)]
        elif isinstance(cur, dict) and step in cur:
            cur = cur[step]
        else:
            raise KeyError(f"{path}: no {step!r}")
    return cur


def fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if spec == "kofn":
        k, n = (value["k"], value["n"]) if isinstance(value, dict) else value
        return f"{k} of {n}"
    return format(value, spec)


def _kofn(k: int | None, n: int | None, ci: bool = False) -> str:
    """``3 of 40``; with ``ci``, its Wilson 95% interval too: ``3 of 40 (3-20%)``."""
    if k is None or not n:
        return "-"
    if not ci:
        return f"{k} of {n}"
    lo, hi = proportion_ci(k, n)
    return f"{k} of {n} ({100 * lo:.0f}-{100 * hi:.0f}%)"


def demo_results(doc: dict[str, Any]) -> str:
    """README's results table: every model of the demo run, its accuracy on the test split
    (after the package's presence decision; normal images flagged with their Wilson 95%
    interval), size, and p90 latency of its FP32 artifacts on
    ONNX Runtime and OpenVINO (one run, one machine)."""
    head = ["model", "KD", "Dice", "lesion Dice", "lesion images detected", "normal images flagged",
            "held-out normals flagged (without the decision)", "HD95 px",
            "params", "GMACs", "p90 ms OpenVINO fp32", "p90 ms ONNX Runtime fp32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in doc["models"].items():
        p90 = doc["p90_fp32"].get(name, {})
        cells = [name, str(m.get("kd") or "-"), fmt(m.get("dice"), ".3f"), fmt(m.get("dice_lesion"), ".3f"),
                 _kofn(m.get("lesion_detected"), m.get("lesion_n")), _kofn(m.get("normal_flagged"), m.get("normal_n"), ci=True),
                 _kofn(m.get("heldout_flagged"), m.get("heldout_n"), ci=True)
                 + ("" if m.get("heldout_flagged_ungated") is None else f" ({m['heldout_flagged_ungated']})"), fmt(m.get("hd95"), ".1f"), f"{m['params'] / 1e6:.3f} M", fmt(m.get("gmacs"), ".3f"),
                 fmt(p90.get("openvino"), ".2f"), fmt(p90.get("onnxruntime"), ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Machine: {doc['machine']}. Command: `{doc['provenance']['command']}` "
                 f"(commit {str(doc['provenance']['commit'])[:10]}).")
    return "\n".join(lines) + "\n"


def _pm(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    sd = f" ± {s['lesion_dice_sd']:.3f}" if s.get("lesion_dice_sd") is not None else ""
    return f"{s['lesion_dice_mean']:.3f}{sd} (n={s['n_seeds']})"


def scales_results(doc: dict[str, Any]) -> str:
    """README's model-scales table (benchmarks/scales.py): per scale, size, p50 latency at 256 px
    and lesion Dice (mean ± sd over seeds) with and without dual KD; baselines below."""
    cols = [c for c in ("openvino-int8", "onnxruntime-fp32") if any(c in s["latency_ms"] for s in doc["summary"])]
    head = ["model", "scale", "params", "GMACs @256", *[f"p50 ms {c}" for c in cols],
            "lesion Dice, dual KD", "lesion Dice, no KD"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(s["arch"], s["scale"], s["kd"]): s for s in doc["summary"]}
    keys = list(dict.fromkeys((s["arch"], s["scale"]) for s in doc["summary"]))
    order = {"n": 0, "s": 1, "m": 2, "l": 3}
    keys.sort(key=lambda k: (k[0] != "simplified_unet", order.get(k[1] or "", 9), k[0]))
    for arch, scale in keys:
        any_s = by.get((arch, scale, "dual")) or by[(arch, scale, "none")]
        cells = ["Simplified U-Net" if arch == "simplified_unet" else f"{arch} (baseline)", scale or "-",
                 f"{any_s['params'] / 1e6:.3f} M", f"{any_s['gmacs_256']:.3f}",
                 *[fmt(any_s["latency_ms"].get(c), ".2f") for c in cols],
                 _pm(by.get((arch, scale, "dual"))), _pm(by.get((arch, scale, "none")))]
        lines.append("| " + " | ".join(cells) + " |")
    m = doc["machine"]
    lines.append("")
    lines.append(f"Machine: {m.get('cpu')}, {m.get('threads')} inference threads, shared with training jobs "
                 f"(latency rows timed round-robin in one run). Command: `{doc['command']}` "
                 f"(commit {str(doc['provenance']['commit'])[:10]}).")
    return "\n".join(lines) + "\n"


TABLES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "demo-results": ("demo.json", demo_results),
    "scales": ("scales.json", scales_results),
}


def _load(name: str, cache: dict[str, Any], problems: list[str], where: str) -> Any:
    if name not in cache:
        path = RESULTS / name
        try:
            cache[name] = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            cache[name] = None
            problems.append(f"{where}: cannot read {_show(path)}: {e}")
            return None
        doc = cache[name]
        why = stale(doc.get("provenance") if isinstance(doc, dict) else None, ROOT)
        if why and not _acknowledged(doc):
            problems.append(f"{where}: {_show(path)} is stale: {why}; or mark it stale: "
                            f"python tools/docs_numbers.py --mark-stale {name} --why '...'")
    return cache[name]


def _show(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _acknowledged(doc: Any) -> bool:
    """A stale file someone marked as stale for *today's* code (the docs then say so)."""
    ack = doc.get("stale") if isinstance(doc, dict) else None
    return bool(ack) and ack.get("code_hash") == code_hash(doc["provenance"]["code_paths"], ROOT)


def mark_stale(name: str, why: str) -> None:
    """Record that ``name``'s numbers predate today's code: the docs show them flagged
    "(stale)" with the reason until the file is re-measured (its script rewrites it whole)."""
    path = RESULTS / name
    doc = json.loads(path.read_text())
    doc["stale"] = {"why": why, "code_hash": code_hash(doc["provenance"]["code_paths"], ROOT)}
    write_json(path, doc)


def render(text: str, where: str, cache: dict[str, Any], problems: list[str]) -> str:
    """``text`` with every marked number and table re-rendered from its results file."""

    def inline(m: re.Match) -> str:
        doc = _load(m.group(1), cache, problems, where)
        if doc is None:
            return m.group(0)
        try:
            value = fmt(lookup(doc, m.group(2)), m.group(3)) + (" (stale)" if doc.get("stale") else "")
        except (KeyError, IndexError, TypeError, ValueError) as e:
            problems.append(f"{where}: {m.group(1)}:{m.group(2)}: {e}")
            return m.group(0)
        return f"<!-- n:{m.group(1)}:{m.group(2)}:{m.group(3)} -->{value}<!-- /n -->"

    def block(m: re.Match) -> str:
        if m.group(2) not in TABLES:
            problems.append(f"{where}: unknown table {m.group(2)!r}; known: {', '.join(TABLES)}")
            return m.group(0)
        file, fn = TABLES[m.group(2)]
        doc = _load(file, cache, problems, where)
        if doc is None:
            return m.group(0)
        note = f"\n**Stale**: {doc['stale']['why']}\n" if doc.get("stale") else ""
        return m.group(1) + fn(doc) + note + m.group(4)

    return BLOCK.sub(block, INLINE.sub(inline, text))


def run(check: bool, docs: list[str] = DOCS, root: Path = ROOT) -> list[str]:
    """Re-render every doc; return the problems (stale files, unknown keys, and with ``check``
    every doc whose marked numbers differ from their results files)."""
    problems: list[str] = []
    cache: dict[str, Any] = {}
    for rel in docs:
        path = root / rel
        text = path.read_text()
        new = render(text, rel, cache, problems)
        if new != text:
            if check:
                diffs = [f"{o[0]}:{o[1]}: docs say {o[3]!r}, results say {n[3]!r}"
                         for o, n in zip(INLINE.findall(text), INLINE.findall(new)) if o != n]
                diffs += [f"table {o[1]}: differs from its results file"
                          for o, n in zip(BLOCK.findall(text), BLOCK.findall(new)) if o != n]
                problems += [f"{rel}: {d}" for d in diffs] or [f"{rel}: differs from its results files"]
            else:
                path.write_text(new)
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 on any difference or stale file")
    ap.add_argument("--mark-stale", metavar="FILE", help="flag FILE's numbers as made by older code (with --why)")
    ap.add_argument("--why", default=None)
    args = ap.parse_args()
    if args.mark_stale:
        if not args.why:
            sys.exit("error: --mark-stale needs --why 'what changed and why it was not re-measured'")
        mark_stale(args.mark_stale, args.why)
    problems = run(args.check)
    for p in problems:
        print(f"{'error' if args.check else 'warning'}: {p}", file=sys.stderr)
    if problems and args.check:
        sys.exit(1)
    if not args.check:
        print("docs numbers written from benchmarks/results/" + (" (with warnings above)" if problems else ""))


if __name__ == "__main__":
    main()
