"""A cart that runs ONNX Runtime or OpenVINO must not need torch installed."""

import subprocess
import sys


def test_onnxruntime_and_openvino_paths_do_not_import_torch(exported_package):
    code = (
        "import sys, numpy as np\n"
        "from btseg.runtime import Segmenter\n"
        f"for b in ('onnxruntime', 'openvino'):\n"
        f"    s = Segmenter.load({str(exported_package)!r}, backend=b, threads=1)\n"
        "    s.segment(np.zeros((80, 90), np.uint8))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
