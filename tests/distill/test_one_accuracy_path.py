"""One accuracy path: the metrics training writes into model.json are the bench's numbers,
for a package whose post-processing is on (``largest_component`` and ``fill_holes``).

Before this, training evaluation scored ``prob >= threshold`` without the package's
clean-up while the bench scored the runtime's masks, so the two disagreed as soon as a
package turned post-processing on.
"""

from __future__ import annotations

import dataclasses

import pytest

from btseg.bench.accuracy import evaluate, load_test_set
from btseg.distill.evaluate import evaluate_package
from btseg.distill.pipeline import run
from btseg.package import load_package
from btseg.runtime import Segmenter

# HD95/ASSD differ by design: model.json has them in mm where the data has a spacing, the bench in pixels
SAME = ("dice", "iou", "precision", "recall", "specificity")


@pytest.fixture(scope="module")
def trained(phantom_dir, tmp_path_factory):
    from btseg.distill.config import get_preset

    # the tiny student's probabilities sit around 0.58 on this phantom: a threshold inside that
    # range gives fragmented masks, which largest_component and fill_holes change
    cfg = get_preset("tiny").replace(progress=False, device="cpu", kd="none", threshold=0.588,
                                     postprocess={"largest_component": True, "fill_holes": True})
    out = tmp_path_factory.mktemp("run")
    run("student", phantom_dir, out, cfg)
    return out / "student"


def _means(summary: dict) -> dict:
    blocks = {"overall": summary["overall"], **summary["per_class"]}
    return {(b, m): blocks[b][m]["mean"] for b in blocks for m in SAME}


def test_model_json_metrics_equal_the_bench(trained, phantom_dir):
    pkg = load_package(trained)
    clean_up = {k: v for k, v in pkg.config.postprocess.items() if k != "presence"}  # presence: calibrated on val
    assert clean_up == {"largest_component": True, "fill_holes": True}
    recorded = pkg.config.metrics["test"]
    bench = evaluate(Segmenter.load(trained, backend="torch"), load_test_set(phantom_dir, [trained]))
    assert bench["n"] == recorded["n"]
    assert _means(bench) == pytest.approx(_means(recorded), rel=1e-9, nan_ok=True)
    # the "no lesion" decision is counted the same way too
    assert {k: recorded["presence"][k] for k in ("lesion", "normal")} == bench["presence"]


def test_post_processing_changes_these_numbers(trained, phantom_dir):
    # the test above could not fail if the clean-up did nothing on this model: show that it does
    from btseg.data import open_dataset
    from btseg.data.splits import Splits, find_splits
    from btseg.runtime.postprocess import PostProcess

    pkg = load_package(trained)
    test = Splits.load(find_splits([trained])).select(open_dataset(phantom_dir, include_normal=True), "test")
    bare = evaluate_package(pkg, test, distances=False, post=PostProcess(pkg.config.threshold))
    full = evaluate_package(pkg, test, distances=False)
    assert _means(full) == pytest.approx(_means(pkg.config.metrics["test"]), rel=1e-9, nan_ok=True)
    assert _means(bare) != pytest.approx(_means(full), rel=1e-9, nan_ok=True)
    assert dataclasses.replace(PostProcess.of(pkg.config), spec={}) == PostProcess(pkg.config.threshold)
