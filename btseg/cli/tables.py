"""Rich tables of what the library returns: the export results, a package check, the bench.

The library returns data (:class:`~btseg.export.pipeline.ExportResult` lists,
:class:`~btseg.package_check.CheckReport`, the bench's result dict and its
:func:`~btseg.bench.report.display_rows`); presentation lives here, in the application layer.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def export_results(results: list[Any]) -> Table:
    """``btseg-export``'s results (a list of :class:`~btseg.export.pipeline.ExportResult`):
    target, precision, status, size MB, Dice vs PyTorch / GT, seconds."""
    t = Table(title="btseg export")
    for col in ("target", "prec", "status", "MB", "Dice/torch", "Dice/GT", "max|Δp|", "sec"):
        left = col in ("target", "prec", "status")
        t.add_column(col, justify="left" if left else "right", no_wrap=col != "status")
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for r in results:
        v = r.verification or {}
        colour = {"ok": "green", "skipped": "yellow"}.get(r.status, "red")
        t.add_row(r.target, r.precision, f"[{colour}]{r.label}[/{colour}]",
                  fmt(r.size_bytes / 1e6 if r.size_bytes else None, ".2f"), fmt(v.get("dice_vs_torch"), ".4f"),
                  fmt(v.get("dice_gt"), ".4f"), fmt(v.get("max_abs_diff"), ".2g"), fmt(r.export_seconds, ".1f"))
    return t


def check_report(report: Any) -> Table:
    """``btseg-check``'s table of a :class:`~btseg.package_check.CheckReport`."""
    t = Table(title=f"btseg-check {report.package}")
    for col in ("artifact", "files", "MB", "sha256", "bound to weights", "verification", "status"):
        t.add_column(col, justify="right" if col in ("files", "MB") else "left")
    mark = {True: "[green]ok[/green]", False: "[red]MISMATCH[/red]", None: "-"}
    for r in report.rows:
        colour = {"ok": "green", "unusable": "yellow"}.get(r.status, "red")
        status = r.status + (f": {r.reason}" if r.reason else "")
        t.add_row(r.artifact, str(r.files), f"{r.size_bytes / 1e6:.2f}", mark[r.hash_ok], mark[r.bound],
                  r.verification, f"[{colour}]{status}[/{colour}]")
    return t


def print_bench(result: dict[str, Any], console: Console | None = None) -> None:
    """``btseg-bench``'s summary table (rows of :func:`btseg.bench.report.display_rows`),
    failed rows' reasons below it."""
    from btseg.bench.report import display_rows

    console = console or Console()
    head, cells = display_rows(result)
    t = Table(title="btseg-bench (latency: batch 1, single stream, inference only unless e2e)")
    for h in head:
        t.add_column(h, justify="left" if h in ("status", "model", "backend", "artifact", "ran as") else "right")
    styles = {"ok": "green", "failed": "red", "skipped": "yellow"}
    for r, c in zip(result["rows"], cells):
        t.add_row(*c, style=styles.get(r["status"]))
    console.print(t)
    for r in result["rows"]:
        if r["status"] != "ok":
            console.print(f"[{styles.get(r['status'], '')}]{r['status']}[/]: {escape(r['model'])} {r['backend']} "
                          f"{r['precision']}: {escape(str(r['reason']))}")
