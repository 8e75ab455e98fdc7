"""report.html: one self-contained file that renders in a real headless browser.

The bench is run for real on the tiny exported package (conftest); the page is then opened in
headless Chromium (tests/browser_util.py), which must show every image with no console error,
and the tables must sort.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from btseg.bench.html import HtmlReport, data_uri
from btseg.cli.bench import main
from btseg.errors import DataError
from browser_util import commonmark_images, render

FAST = ["--warmup", "1", "--iters", "3", "--limit", "3", "--no-peak", "--no-memory"]


@pytest.fixture(scope="module")
def bench_out(exported, phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-html")
    r = CliRunner().invoke(main, ["--model", str(exported / "student"), "--data", str(phantom), "--out", str(out),
                                  "--backends", "all", *FAST], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_bench_report_html_is_self_contained(bench_out):
    html = (bench_out / "report.html").read_text()
    # nothing to fetch: every image inlined, no external script, stylesheet or link
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html)
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    # the per-class table says which artifact each row is (two openvino fp32 rows were twins)
    assert "<th class=\"l\" title=\"sort by artifact\">artifact</th>" in html
    assert "onnx/int8" in html and "openvino/fp32" in html
    # the failed tensorrt row is listed with its reason
    assert "Rows that did not run" in html and "tensorrt" in html


def test_bench_report_html_renders_in_chromium(bench_out):
    seen = render(bench_out / "report.html")
    assert seen["title"].startswith("btseg-bench")
    assert seen["images"] and all(i["loaded"] and i["data"] for i in seen["images"]), seen["images"]
    assert seen["errors"] == []
    assert seen["tables"] >= 2
    # clicking the last header (GMACs) sorts numerically, then reverses
    nums = lambda col: [float(v) for v in col if v != "-"]  # noqa: E731
    assert nums(seen["sort"]["asc"]) == sorted(nums(seen["sort"]["before"]))
    assert nums(seen["sort"]["desc"]) == sorted(nums(seen["sort"]["before"]), reverse=True)


def test_bench_markdown_images_render_as_commonmark(bench_out):
    md = (bench_out / "bench.md").read_text()
    assert commonmark_images(md)[0] == commonmark_images(md)[1]


def test_page_escapes_text_and_refuses_what_it_cannot_inline(tmp_path):
    page = HtmlReport("a <b> & c")
    page.table(["x"], [["<script>alert(1)</script>"]])
    text = page.render()
    assert "<script>alert(1)" not in text and "&lt;script&gt;" in text
    bad = tmp_path / "x.gif"
    bad.write_bytes(b"GIF89a")
    with pytest.raises(DataError, match="x.gif.*cannot inline"):
        data_uri(bad)
    with pytest.raises(DataError, match="nosuch.png.*cannot read"):
        data_uri(tmp_path / "nosuch.png")
