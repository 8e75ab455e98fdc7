"""`make demo` end to end on the tiny preset: every step runs and the report is written."""

import json
import re

from click.testing import CliRunner

from btseg.cli.demo import main
from browser_util import commonmark_images, render


def test_demo_tiny_end_to_end_then_reuses_everything(tmp_path):
    out = tmp_path / "demo"
    args = ["--out", str(out), "--preset", "tiny", "--n", "16", "--size", "64", "--iters", "5", "--no-memory"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    report = (out / "report.md").read_text()
    assert "## Training (test split)" in report and "## Benchmark" in report and "bench/bench.png" in report
    assert (out / "bench" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    models = json.loads((out / "results.json").read_text())
    assert set(models) == {"teacher-benign", "teacher-malignant", "student", "student-nokd",
                           "baseline-unet", "baseline-unext"}
    assert models["student"]["kd"] == "dual" and models["student-nokd"]["kd"] == "none"
    assert list((out / "overlays").glob("*_overlay.png"))
    # every image link renders in CommonMark (names with spaces were shown as text)
    written, shown = commonmark_images(report)
    assert written >= 2 and shown == written
    # the cases cover every class, normal included, each with its per-image Dice
    from btseg.data import Splits, open_dataset

    test = Splits.load(out / "run" / "splits.json").select(open_dataset(out / "data"), "test")
    for label in set(test.labels):
        assert re.search(rf"{label}/[^:]+: Dice \d\.\d{{3}} \({label}\); student on ", report), label
    # a lesion case shows its ground truth in red (BGR 0,0,255) beside the green prediction
    import cv2

    lesion_case = next(p for p in (out / "overlays" / "cases").glob("*.png") if not p.name.startswith("normal"))
    img = cv2.imread(str(lesion_case), cv2.IMREAD_COLOR)
    assert ((img[..., 2] > 200) & (img[..., 1] < 60) & (img[..., 0] < 60)).any(), "no red ground-truth contour"
    seen = render(out / "report.html")
    assert seen["errors"] == [] and len(seen["images"]) >= 3 and all(i["loaded"] for i in seen["images"])
    weights = (out / "run" / "student" / "model.safetensors").stat().st_mtime_ns
    r = CliRunner().invoke(main, args)  # a second run retrains nothing
    assert r.exit_code == 0, r.output
    assert "train: reusing student" in r.output
    assert (out / "run" / "student" / "model.safetensors").stat().st_mtime_ns == weights
