"""The whole chain on a data set in the real Dataset B (UDIAT) layout: original/, GT/,
DatasetB.xlsx. Train (tiny) -> export -> runtime -> bench, each through its CLI."""

import json

import numpy as np
from click.testing import CliRunner

from btseg.data.phantom import write_datasetb


def test_distill_export_predict_bench_on_dataset_b_layout(tmp_path):
    from btseg.cli.bench import main as bench
    from btseg.cli.distill import main as distill
    from btseg.cli.export import main as export
    from btseg.cli.predict import main as predict

    data, run = tmp_path / "DatasetB", tmp_path / "run"
    write_datasetb(data, n=24, seed=0, size=96)
    cli = CliRunner()
    r = cli.invoke(distill, ["all", "--data", str(data), "--preset", "tiny", "--out", str(run), "--no-progress"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(export, [str(run / "student"), "-t", "onnx", "-p", "fp32", "--verify-data", str(data),
                            "--verify-n", "6"])
    assert r.exit_code == 0, r.output
    image = next((data / "original").glob("*.png"))
    r = cli.invoke(predict, [str(image), "--model", str(run / "student"), "--out", str(tmp_path / "pred")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "pred" / f"{image.stem}_mask.png").exists()
    r = cli.invoke(bench, ["--model", str(run / "student"), "--data", str(data), "--iters", "3", "--warmup", "1",
                           "--no-memory", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["rows"]
    ok = [x for x in rows if x["status"] == "ok"]
    assert {x["backend"] for x in ok} >= {"torch", "onnxruntime"} and all(np.isfinite(x["dice"]) for x in ok)
