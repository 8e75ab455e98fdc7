"""TensorRT: what runs without a GPU (capabilities, the missing-tensorrt error, exit code 2)."""

from __future__ import annotations

import pytest

from btseg.errors import BackendUnavailableError
from btseg.export import tensorrt as trt_export
from btseg.export.targets import plan_jobs

REASON = trt_export.probe()


def test_capabilities_cover_every_precision():
    jobs = plan_jobs(["tensorrt"], ["fp32", "fp16", "int8"], calib_method="entropy")
    assert [j.id for j in jobs] == ["tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8"]


@pytest.mark.skipif(REASON is None, reason="tensorrt and a CUDA device are present")
def test_missing_tensorrt_is_a_clear_error(pkg_copy, phantom, cli):
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        trt_export.require_tensorrt()
    before = {p.name for p in pkg_copy.iterdir()}
    r = cli(pkg_copy, "--target", "tensorrt", "--precision", "fp16", "--verify-data", phantom)
    assert r.exit_code == 2
    assert f"tensorrt/fp16: {REASON}" in r.output and "Traceback" not in r.output
    assert {p.name for p in pkg_copy.iterdir()} == before


@pytest.mark.gpu
@pytest.mark.skipif(REASON is not None, reason=f"needs TensorRT >= 10 and a CUDA device ({REASON})")
def test_engine_builds_and_verifies(pkg_copy, phantom, cli):  # pragma: no cover - GPU only
    r = cli(pkg_copy, "--target", "tensorrt", "--precision", "fp16", "--verify-data", phantom, "--verify-n", "4")
    assert r.exit_code == 0, r.output
    from btseg.package import load_package

    rec = load_package(pkg_copy).artifact("tensorrt", "fp16")
    assert rec.extra["tensorrt"] and rec.extra["gpu"] and rec.extra["compute_capability"]
    assert (pkg_copy / "tensorrt.timing.cache").is_file()
