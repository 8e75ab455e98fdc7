"""Presentation lives in btseg/cli: the library returns data, btseg.cli.tables renders it."""

from __future__ import annotations

import ast
from pathlib import Path

from rich.console import Console

from btseg.cli.tables import check_report, export_results
from btseg.defaults import DEFAULT_PACKAGE
from btseg.export.pipeline import ExportResult
from btseg.package_check import check_package

ROOT = Path(__file__).resolve().parents[2] / "btseg"


def render(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def test_no_library_module_imports_rich():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "rich"]
    assert found == []


def test_export_results_table():
    rows = [ExportResult("onnx", "fp32", "ok", file="student-fp32.onnx", size_bytes=2_500_000, export_seconds=1.25,
                         verification={"dice_vs_torch": 0.99991, "dice_gt": 0.8, "max_abs_diff": 1e-6}),
            ExportResult("tensorrt", "fp16", "skipped", "tensorrt not installed")]
    text = render(export_results(rows))
    assert "onnx" in text and "2.50" in text and "0.9999" in text
    assert "skipped: tensorrt not installed" in text


def test_check_report_table():
    report = check_package(DEFAULT_PACKAGE)
    text = render(check_report(report))
    assert all(r.artifact in text for r in report.rows) and "btseg-check" in text
