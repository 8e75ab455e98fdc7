"""Benchmark reports: terminal table, JSON, CSV, Markdown and a Dice-vs-latency plot.

Columns (the same in the table, CSV and Markdown):

* ``p50``/``p90`` ms: inference only (the Segmenter's ``infer_ms``), batch 1, one at a time;
  p90 is MLPerf's single-stream headline.  ``e2e p90``: preprocess + inference +
  postprocess on an original-size frame.  ``FPS``: ``1000 / mean e2e ms``.
* ``Dice``: mean over the test split through the runtime; ``% FP32``: Dice as % of the same
  package's torch/fp32 row (MLPerf's medical gate is 99%).
* ``lesion sensitivity``: share of test images with a lesion that the runtime says have one
  (the package's presence decision); ``normal false-lesion rate (k of n)``: normal test
  images it draws a lesion on, as a count.
* ``peak MB``: peak RSS of a fresh process that loaded and ran the row; ``(+N)``: above
  that process's baseline after imports (the model's own cost).
* ``GMACs``: MACs, FLOPs = 2 x MACs, counted by torch FlopCounterMode (conv/matmul only).
* ``load ms``: time to open the row (OpenVINO: cold compile into an empty model cache, then
  ``/`` the cached start-up).  ``img/s``: batch-1 single stream (1000 / p50), then the
  ``--batch``/``--streams`` throughput rows (``b4: ...``, ``s2: ...``).
* ``GMAC/s`` and ``% peak``: GMACs x images/s at batch-1 p50, as % of this machine's peak
  GMAC/s for the precision the row ran in (``result["peak"]``, measured in the same run).

Every file goes through :mod:`btseg.io` (atomic writes).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from btseg.io import atomic_path, atomic_write, write_json
from btseg.specs import BACKEND_SPECS

# (header, key or callable, format)
CSV_FIELDS = ("status", "model", "role", "architecture", "backend", "target", "precision", "device", "threads",
              "size_mb", "params", "gmacs", "dice", "dice_std", "dice_pct_fp32", "iou", "prec", "recall", "hd95",
              "dice_benign", "dice_malignant", "lesion_sensitivity", "lesion_detected_k", "lesion_n", "normal_false_lesion",
              "normal_false_lesion_k", "normal_false_lesion_n", "infer_p50_ms", "infer_p90_ms", "infer_p99_ms", "infer_mean_ms",
              "e2e_p50_ms", "e2e_p90_ms", "fps", "load_ms", "load_cached_ms", "images_per_s",
              "batch_images_per_s", "streams_images_per_s", "gmacs_per_s", "pct_peak", "peak_precision", "peak_rss_mb", "model_peak_mb", "baseline_rss_mb", "gpu_peak_mb",
              "inference_precision", "file", "reason")


def flatten(r: dict[str, Any]) -> dict[str, Any]:
    """One row as flat CSV fields (None where not measured)."""
    lat, mem = r.get("latency") or {}, r.get("memory") or {}
    inf, e2e = lat.get("infer") or {}, lat.get("e2e") or {}
    flat = {k: r.get(k) for k in CSV_FIELDS}
    flat.update(size_mb=(r.get("size_bytes") or 0) / 1e6 if r.get("file") else None,  # MB = 10^6 B, as export and check
                infer_p50_ms=inf.get("p50_ms"), infer_p90_ms=inf.get("p90_ms"), infer_p99_ms=inf.get("p99_ms"),
                infer_mean_ms=inf.get("mean_ms"), e2e_p50_ms=e2e.get("p50_ms"), e2e_p90_ms=e2e.get("p90_ms"),
                fps=e2e.get("fps"), peak_rss_mb=mem.get("peak_rss_mb"), model_peak_mb=mem.get("model_peak_mb"),
                baseline_rss_mb=mem.get("baseline_rss_mb"), gpu_peak_mb=mem.get("gpu_peak_mb"),
                inference_precision=(r.get("runtime") or {}).get("inference_precision"),
                **{f"{t['mode']}_images_per_s": t["images_per_s"] for t in r.get("throughput") or []})
    if mem.get("status") == "failed":
        flat["reason"] = (flat["reason"] or "") + f" memory: {mem.get('reason')}"
    return flat


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def k_of_n(k: int | None, n: int | None) -> str:
    """``"1 of 8"``; ``"-"`` when there was nothing to count."""
    return "-" if not n else f"{k} of {n}"


def _sens(f: dict[str, Any]) -> str:
    if f.get("lesion_sensitivity") is None:
        return "-"
    return f"{f['lesion_sensitivity']:.3f} ({k_of_n(f.get('lesion_detected_k'), f.get('lesion_n'))})"


def _load(f: dict[str, Any]) -> str:
    cached = f.get("load_cached_ms")
    return _f(f.get("load_ms"), ".0f") + ("" if cached is None else f" / {cached:.0f}")


def _rates(r: dict[str, Any]) -> str:
    parts = [_f(r.get("images_per_s"), ".1f")]
    for t in r.get("throughput") or []:
        tag = f"b{t['batch']}" if t["mode"] == "batch" else f"s{t['streams']}"
        parts.append(f"{tag}: {t['images_per_s']:.1f}")
        if t.get("pct_peak") is not None:
            parts[-1] += f" ({t['pct_peak']:.0f}%)"
    return ", ".join(parts)


def display_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the summary table."""
    head = ["status", "model", "backend", "artifact", "ran as", "size MB", "Dice", "% FP32", "lesion sensitivity",
            "normal false-lesion rate (k of n)", "p50 ms", "p90 ms",
            "e2e p90", "FPS", "load ms (cached)", "img/s (batch/streams)", "GMAC/s", "% peak", "peak MB (+model)",
            "params M", "GMACs"]
    cells = []
    for r in result["rows"]:
        f = flatten(r)
        peak = "-" if f["peak_rss_mb"] is None else f"{f['peak_rss_mb']:.0f} (+{f['model_peak_mb']:.0f})"
        art = "-" if r["target"] == "-" else f"{r['target']}/{r['precision']}"
        cells.append([r["status"], r["model"], r["backend"], art, f["inference_precision"] or "-", _f(f["size_mb"], ".2f"),
                      _f(f["dice"], ".4f"), _f(f["dice_pct_fp32"], ".1f"), _sens(f),
                      k_of_n(f["normal_false_lesion_k"], f["normal_false_lesion_n"]), _f(f["infer_p50_ms"], ".2f"),
                      _f(f["infer_p90_ms"], ".2f"), _f(f["e2e_p90_ms"], ".2f"), _f(f["fps"], ".1f"), _load(f),
                      _rates(r), _f(f["gmacs_per_s"], ".1f"), _f(f["pct_peak"], ".1f"), peak,
                      _f(r.get("params") and r["params"] / 1e6, ".3f"), _f(r.get("gmacs"), ".3f")])
    return head, cells


def write_csv(path: str | Path, result: dict[str, Any]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in result["rows"]:
        w.writerow(flatten(r))
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: machine, settings, table, per-class Dice, failed rows."""
    from btseg.bench.sysinfo import short

    cfg = result["config"]
    timing = f"{cfg['duration']} s" if cfg.get("duration") else f"{cfg['iters']} iters"
    modes = sorted({r["latency_mode"] for r in result["rows"] if r.get("latency_mode")})
    timing += f"; latency timed {' / '.join(modes)}" if modes else ""
    lines = [f"# btseg-bench {result['created']}", "",
             f"- peak (this run): {_peaks(result.get('peak'))}",
             f"- machine: {short(result['system'])}",
             f"- device {cfg['device']}, threads {cfg['threads']}, batch {cfg['batch']}, streams {cfg.get('streams', 1)}, warm-up {cfg['warmup']}, {timing}",
             f"- test set: {_test_set(result.get('test_set'))}",
             f"- MACs: {result['flops_convention']}",
             "- p50/p90: inference only; e2e: preprocess + inference + postprocess; FPS = 1000 / mean e2e ms; "
             "ran as: the precision the backend reports it computed in",
             ""]
    head, cells = display_rows(result)
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    per_class = [r for r in result["rows"] if r.get("accuracy")]
    if per_class:
        head, cells = per_class_rows(per_class)
        lines += ["", "Per class (mean ± std): Dice, IoU, HD95 px", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
    bad = [r for r in result["rows"] if r["status"] != "ok"]
    if bad:
        lines += ["", "Rows that did not run:", ""]
        lines += [f"- {r['status']}: {r['model']} {r['backend']} {r['precision']}: {r['reason']}" for r in bad]
    return "\n".join(lines) + "\n"


def per_class_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the per-class accuracy table: one line per row and class, with the
    artifact (target/precision) so two rows of one backend can be told apart."""
    head = ["model", "backend", "artifact", "class", "n", "Dice", "IoU", "HD95"]
    cells = []
    for r in rows:
        art = "-" if r["target"] == "-" else f"{r['target']}/{r['precision']}"
        for lab, m in r["accuracy"]["per_class"].items():
            cells.append([r["model"], r["backend"], art, lab, str(m["dice"]["n"]),
                          f"{m['dice']['mean']:.4f} ± {m['dice']['std']:.4f}", f"{m['iou']['mean']:.4f}",
                          _f(m.get("hd95", {}).get("mean"), ".1f")])
    return head, cells


def _peaks(peaks: dict[str, Any] | None) -> str:
    if not peaks:
        return "not measured (--no-peak)"
    return "; ".join(f"{k} {v['gmacs_per_s']:.1f} GMAC/s" if "gmacs_per_s" in v else f"{k} skipped ({v['skipped']})"
                     for k, v in peaks.items())


def _test_set(ts: dict[str, Any] | None) -> str:
    if not ts:
        return "none (no --data): no accuracy columns"
    per = ", ".join(f"{n} {lab}" for lab, n in ts.get("per_class", {}).items())
    return f"{ts.get('data')}: {ts.get('n')} images ({per}); split: {ts.get('splits')}"


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, dice) points no other point beats on both (lower, higher)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def place_labels(xy: list[tuple[float, float]], size: tuple[float, float], step: float) -> list[tuple[float, float]]:
    """Greedy, overlap-free label positions (display units) near each point.

    Each label is a ``size`` (w, h) box; it tries rings of candidate offsets around its
    point (closest first) and takes the first that overlaps neither a label placed so far
    nor any point's marker (markers count as boxes of the same size).
    """
    w, h = size
    obstacles = list(xy)
    placed: list[tuple[float, float]] = []
    rings = [(0.0, 0.0)] + [(r * step * np.cos(a), r * step * np.sin(a)) for r in range(1, 12)
                             for a in np.linspace(0, 2 * np.pi, 8 + 4 * r, endpoint=False)]
    for x, y in xy:
        for dx, dy in rings[1:]:
            cx, cy = x + dx, y + dy
            if all(abs(cx - px) >= w or abs(cy - py) >= h for px, py in placed + obstacles):
                break
        placed.append((cx, cy))
    return placed


def plot(path: str | Path, result: dict[str, Any]) -> bool:
    """PNG of Dice vs p90 inference latency: numbered markers (labels placed so that none
    overlap, with a leader line to their point), the Pareto front, and a key table beside
    the plot (number -> model, backend, artifact, p90, Dice).

    Returns False (and writes nothing) when no row has both numbers.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = [r for r in result["rows"] if r["status"] == "ok" and r.get("dice") is not None
            and (r.get("latency") or {}).get("infer")]
    if not rows:
        return False
    pts = [(r["latency"]["infer"]["p90_ms"], r["dice"]) for r in rows]
    # the key table needs ~0.22 in per row: the figure grows with it so no row is cut
    fig = plt.figure(figsize=(12, max(6.5, 0.22 * (len(rows) + 1) + 0.8)), dpi=110)
    ax = fig.add_axes((0.07, 0.1, 0.52, 0.8))
    models = list(dict.fromkeys(r["model"] for r in rows))
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    markers = {n: s.marker for n, s in BACKEND_SPECS.items()}
    for r, (x, y) in zip(rows, pts):
        ax.scatter([x], [y], s=30, color=colors[r["model"]], marker=markers.get(r["backend"], "x"), zorder=3)
    front = [pts[i] for i in pareto(pts)]
    ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:red", lw=1.2, zorder=2, label="Pareto front")
    ax.set_xscale("log")
    # plain tick labels at 1-2-5 steps ("20", "50"), never matplotlib's "2x10^0"
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    pad = max(max(ys) - min(ys), 0.02) * 0.25
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    fig.canvas.draw()
    disp = [tuple(ax.transData.transform(p)) for p in pts]
    spots = place_labels(disp, (16.0, 13.0), 15.0)
    inv = ax.transData.inverted()
    for i, (r, p, spot) in enumerate(zip(rows, pts, spots), 1):
        ax.annotate(str(i), p, xytext=tuple(inv.transform(spot)), textcoords="data", fontsize=7, ha="center",
                    va="center", color=colors[r["model"]], fontweight="bold",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "gray", "shrinkA": 4, "shrinkB": 2})
    for m in models:
        ax.scatter([], [], color=colors[m], marker="o", label=m)
    for b in dict.fromkeys(r["backend"] for r in rows):
        ax.scatter([], [], color="gray", marker=markers.get(b, "x"), label=b)
    ax.set_xlabel("p90 inference latency, ms (batch 1, log scale)")
    ax.set_ylabel("Dice (test split)")
    ax.set_title(f"Dice vs latency, {result['config']['device']}, {result['config']['threads']} threads")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    key = fig.add_axes((0.62, 0.02, 0.37, 0.96))
    key.axis("off")
    frac = min(1.0, 0.22 * (len(rows) + 1) / (fig.get_figheight() * 0.96))  # of the key axes: 0.22 in a row
    cells = [[str(i), r["model"], r["backend"], f"{r['target']}/{r['precision']}", f"{x:.2f}", f"{y:.4f}"]
             for i, (r, (x, y)) in enumerate(zip(rows, pts), 1)]
    table = key.table(cellText=cells, colLabels=["#", "model", "backend", "artifact", "p90 ms", "Dice"],
                      cellLoc="left", bbox=(0, 1 - frac, 1, frac))
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(6)))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def add_html(page: Any, result: dict[str, Any], plot_png: str | Path | None) -> None:
    """The bench's sections of an :class:`btseg.bench.html.HtmlReport`: settings, the sortable
    summary table, the plot, the per-class table and the rows that did not run."""
    from btseg.bench.sysinfo import short

    cfg = result["config"]
    page.para(f"machine: {short(result['system'])}; device {cfg['device']}, threads {cfg['threads']}, "
              f"batch {cfg['batch']}; test set: {_test_set(result.get('test_set'))}; MACs: {result['flops_convention']}")
    head, cells = display_rows(result)
    page.table(head, cells, left=("status", "model", "backend", "artifact", "ran as"),
               row_class=[r["status"] for r in result["rows"]])
    if plot_png is not None:
        page.image(plot_png, "Dice vs p90 inference latency")
    per_class = [r for r in result["rows"] if r.get("accuracy")]
    if per_class:
        page.heading("Per class (mean ± std)", 3)
        head, cells = per_class_rows(per_class)
        page.table(head, cells, left=("model", "backend", "artifact", "class"))
    bad = [r for r in result["rows"] if r["status"] != "ok"]
    if bad:
        page.heading("Rows that did not run", 3)
        page.table(["status", "model", "backend", "precision", "reason"],
                   [[r["status"], r["model"], r["backend"], r["precision"], r["reason"]] for r in bad],
                   left=("status", "model", "backend", "precision", "reason"))


def write_all(out_dir: str | Path, result: dict[str, Any]) -> dict[str, str]:
    """``bench.json``, ``bench.csv``, ``bench.md``, ``bench.png`` (if plottable) and the
    self-contained ``report.html`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "bench.json", "csv": out / "bench.csv", "markdown": out / "bench.md"}
    write_json(files["json"], result)
    write_csv(files["csv"], result)
    with atomic_write(files["markdown"]) as f:
        f.write(markdown(result))
    if plot(out / "bench.png", result):
        files["plot"] = out / "bench.png"
    from btseg.bench.html import HtmlReport

    page = HtmlReport(f"btseg-bench {result['created']}")
    add_html(page, result, files.get("plot"))
    files["html"] = page.write(out / "report.html")
    return {k: str(v) for k, v in files.items()}
