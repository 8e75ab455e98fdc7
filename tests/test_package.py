"""The model package contract: round trip, atomic writes, refusal of bad files."""

import pytest
import torch

from btseg.preprocess import PreprocessSpec
from btseg.errors import ArtifactError
from btseg.io import sha256_file
from btseg.models import SimplifiedUNet
from btseg.package import ArtifactRecord, ModelConfig, load_package, save_package


@pytest.fixture
def pkg(tmp_path):
    torch.manual_seed(0)
    m = SimplifiedUNet(widths=(8, 16, 32))
    cfg = ModelConfig("simplified_unet", {"widths": [8, 16, 32]}, PreprocessSpec(size=(32, 32)))
    save_package(tmp_path / "pkg", m, cfg)
    return tmp_path / "pkg", m


def test_round_trip_gives_identical_outputs(pkg):
    root, m = pkg
    m.eval()
    p = load_package(root)
    assert p.config.input_size == (32, 32)
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(p.build_model()(x), m(x), rtol=0, atol=0)
    assert not list(root.glob(".*tmp*")), "temporary files left behind"


def test_truncated_weights_refused(pkg):
    root, _ = pkg
    w = root / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="model.safetensors"):
        load_package(root).build_model()


def test_unknown_architecture_refused(pkg):
    root, _ = pkg
    text = (root / "model.json").read_text().replace("simplified_unet", "mystery_net")
    (root / "model.json").write_text(text)
    with pytest.raises(ArtifactError, match="unknown model 'mystery_net'"):
        load_package(root)


def test_missing_dir_and_bad_json(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_package(tmp_path / "nope")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_package(tmp_path)


def test_manifest_add_replace_and_sha_check(pkg):
    root, _ = pkg
    p = load_package(root)
    f = root / "a.bin"
    f.write_bytes(b"abc")
    rec = ArtifactRecord(id="onnx-fp32", target="onnx", precision="fp32", file="a.bin",
                         sha256=sha256_file(f), size_bytes=3)
    p.add_artifact(rec)
    p.add_artifact(ArtifactRecord(id="onnx-int8", target="onnx", precision="int8", file="a.bin",
                                  sha256=rec.sha256, size_bytes=3))
    p.add_artifact(rec)  # replace, not duplicate
    assert sorted(a.id for a in p.artifacts()) == ["onnx-fp32", "onnx-int8"]
    assert p.artifact_path(p.artifact("onnx", "fp32")) == f
    f.write_bytes(b"abd")
    with pytest.raises(ArtifactError, match="sha256"):
        p.artifact_path(p.artifact("onnx", "fp32"))
    with pytest.raises(ArtifactError, match="no tensorrt/fp16 artifact"):
        p.artifact("tensorrt", "fp16")
