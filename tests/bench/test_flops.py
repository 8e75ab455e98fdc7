"""FLOPs/params against the published Attention U-Net figures, and torch vs ONNX counts."""

import pytest
import torch

from btseg.bench.flops import count_macs, count_params, onnx_macs
from btseg.models import AttentionUNet, SimplifiedUNet

# Medical-Image-Segmentation-Benchmarks table (DESIGN.md): 34.87 M params, 66.63 G MACs at 256x256
PUBLISHED_PARAMS = 34.87e6
PUBLISHED_MACS = 66.63e9


def test_attention_unet_matches_published_figures():
    model = AttentionUNet()
    assert count_params(model) == pytest.approx(PUBLISHED_PARAMS, rel=0.01)
    # FlopCounterMode gives 66.35 G (it skips the element-wise ops thop counts): within 1.5%
    assert count_macs(model, (256, 256)) == pytest.approx(PUBLISHED_MACS, rel=0.015)


def test_macs_scale_with_pixels():
    m = SimplifiedUNet(widths=(8, 16))
    assert count_macs(m, (64, 64)) * 4 == count_macs(m, (128, 128))


@pytest.mark.parametrize("ctor", [lambda: AttentionUNet(widths=(8, 16, 32)), lambda: SimplifiedUNet(widths=(8, 16, 32))])
def test_onnx_count_equals_torch_count(ctor, tmp_path):
    model = ctor().eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 64, 64),), str(path), dynamo=False, opset_version=17)
    assert onnx_macs(path) == pytest.approx(count_macs(model, (64, 64)), rel=0.01)
