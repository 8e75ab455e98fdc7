"""btseg's TensorRT code held to the real TensorRT 10.x and 11.x Python API, without a GPU.

(a) Static, offline: every ``trt.X[.Y]`` the code names, and every method/keyword called on
    a variable named after a TensorRT object (see ``TYPED``), must exist in each version of
    ``data/tensorrt_api.json`` (generated from the real bindings wheels by
    ``tools/trt_api.py``); every ``cudart.X[.Y]`` must exist in the installed
    ``cuda.bindings.runtime``.
(b) Where the bindings wheels can be had (``.trt-wheels/`` or ``pip download``), each
    version is imported over a gcc-compiled stub of ``libnvinfer`` and btseg's builder and
    runtime code run up to the first call that needs TensorRT itself, which must come out
    as btseg's typed error.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
API = json.loads((Path(__file__).parent / "data" / "tensorrt_api.json").read_text())
SOURCES = [ROOT / "btseg" / "export" / f for f in ("tensorrt.py", "tensorrt_cache.py")] + [
    ROOT / "btseg" / "runtime" / "tensorrt_backend.py"]
# the naming convention btseg's TensorRT code follows: variable (or self._attribute) -> class
TYPED = {"builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser",
         "config": "IBuilderConfig", "opt_profile": "IOptimizationProfile", "cache": "ITimingCache",
         "inp": "ITensor", "engine": "ICudaEngine", "context": "IExecutionContext", "runtime": "Runtime"}
# attributes that differ between versions are only probed (hasattr(trt.X, "NAME")): the
# walk sees trt.X, which must exist everywhere; the probed name is a string, not checked
PROBED: set[str] = set()


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; ``self._x.y`` -> ["x", "y"]; else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not parts:
        return None
    parts.append(node.id)
    parts.reverse()
    if parts[0] == "self" and len(parts) > 1:
        parts = [parts[1].lstrip("_"), *parts[2:]]
    return parts


def _uses() -> tuple[set[str], set[tuple[str, str]], set[tuple[str, str, str]], set[str]]:
    """(trt attribute paths, (class, member) on typed variables, (class, method, keyword), cudart paths)."""
    trt_paths, members, keywords, cuda_paths = set(), set(), set(), set()
    for src in SOURCES:
        tree = ast.parse(src.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                ch = _chain(node.func)
                if ch and len(ch) == 2 and ch[0] in TYPED:
                    keywords |= {(TYPED[ch[0]], ch[1], k.arg) for k in node.keywords if k.arg}
            if not isinstance(node, ast.Attribute):
                continue
            ch = _chain(node)
            if not ch:
                continue
            if ch[0] == "trt" and len(ch) > 1:
                trt_paths.add(".".join(ch[1:3]))
            elif ch[0] == "cudart" and len(ch) > 1:
                cuda_paths.add(".".join(ch[1:3]))
            elif ch[0] in TYPED and len(ch) > 1:
                members.add((TYPED[ch[0]], ch[1]))
    return trt_paths, members, keywords, cuda_paths


TRT_PATHS, MEMBERS, KEYWORDS, CUDA_PATHS = _uses()


def test_the_ast_walk_finds_the_code_under_test():
    """Guards the walk itself: the calls btseg's build relies on are seen."""
    assert {"Builder", "OnnxParser", "NetworkDefinitionCreationFlag.STRONGLY_TYPED", "ILogger.ERROR"} <= TRT_PATHS
    assert {("IBuilderConfig", "set_timing_cache"), ("IExecutionContext", "execute_async_v3"), ("ITimingCache", "serialize"),
            ("Builder", "build_serialized_network")} <= MEMBERS
    assert {"cudaMemcpyAsync", "cudaMemcpyKind.cudaMemcpyHostToDevice", "cudaError_t.cudaSuccess"} <= CUDA_PATHS
    assert set(API) >= {"10.0.1", "11.4.0.106"} and any(v.startswith("10.16") for v in API)


@pytest.mark.parametrize("version", sorted(API))
def test_every_tensorrt_name_exists(version):
    api = API[version]
    classes, functions = api["classes"], api["functions"]
    missing = []
    for path in sorted(TRT_PATHS):
        head, _, member = path.partition(".")
        if path == "__version__":
            continue  # every release has it (the name list is keyed by it)
        if head not in classes and head not in functions:
            missing.append(path)
        elif member and path not in PROBED and member not in classes.get(head, {}).get("members", []):
            missing.append(path)
    for cls, member in sorted(MEMBERS):
        if member not in classes[cls]["members"]:
            missing.append(f"{cls}.{member}")
    assert not missing, f"TensorRT {version} lacks {missing}"


@pytest.mark.parametrize("version", sorted(API))
def test_keyword_arguments_match_the_signatures(version):
    sigs = API[version]["classes"]
    bad = [f"{c}.{m}({k}=)" for c, m, k in sorted(KEYWORDS)
           if not any(re.search(rf"\b{k}:", s) for s in sigs[c]["signatures"].get(m, []))]
    assert not bad, f"TensorRT {version}: no such keyword {bad}"


def test_strongly_typed_is_the_only_precision_mechanism_used():
    """No BuilderFlag.FP16/INT8 (gone in 11) used as a flag; only probed with hasattr."""
    assert not {p for p in TRT_PATHS if p.startswith("BuilderFlag.")} - PROBED
    for version, api in API.items():
        assert "STRONGLY_TYPED" in api["classes"]["NetworkDefinitionCreationFlag"]["enum"], version
    assert "FP16" not in API["11.4.0.106"]["classes"]["BuilderFlag"]["enum"]  # why: 11 removed it


def test_every_cuda_runtime_name_exists():
    cudart = pytest.importorskip("cuda.bindings.runtime")
    missing = []
    for path in sorted(CUDA_PATHS):
        obj = cudart
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(path)
    assert not missing, f"cuda.bindings.runtime lacks {missing}"


# -- (b) the real bindings over a stub libnvinfer --------------------------------------------

def _tools():
    spec = importlib.util.spec_from_file_location("trt_api", ROOT / "tools" / "trt_api.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def stubbed(tmp_path_factory):
    """(tools module, stub dir, {version: site dir}) or skip with the reason."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: cannot compile the libnvinfer stub")
    tools = _tools()
    wheels = tools.download(strict=False)
    if not wheels:
        pytest.skip(f"no TensorRT bindings wheel in {tools.CACHE} and pip download failed "
                    f"(offline, or no wheel for Python {sys.version_info.major}.{sys.version_info.minor})")
    work = tmp_path_factory.mktemp("trt")
    stub = tools.build_stub(work / "stub")
    return tools, stub, {w.name.split("-")[1]: tools.extract(w, work) for w in wheels}


CHILD = r'''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import trt_api
trt = trt_api.import_tensorrt()
from btseg.errors import ArtifactError, BackendUnavailableError, BtsegError
from btseg.export import tensorrt as T
from btseg.runtime import tensorrt_backend as B

out = {"version": trt.__version__, "capabilities": T.capabilities(trt), "probe": T.probe()}
log = B.make_logger(trt, keep=2)
for i in range(3):
    log.log(trt.ILogger.ERROR, f"error {i}")
log.log(trt.ILogger.WARNING, "a warning")
log.log(trt.ILogger.INFO, "info")
out["kept_errors"], out["kept_warnings"], out["tail"] = list(log.errors), list(log.warnings), log.tail()

def attempt(fn):
    try:
        fn()
    except BtsegError as e:
        return [type(e).__name__, str(e)]
    except Exception as e:  # anything else is a bug: an untyped traceback for the user
        return ["UNTYPED " + type(e).__name__, str(e)]
    return ["no error", ""]

fp32, qdq, engine = sys.argv[2], sys.argv[3], sys.argv[4]
out["require"] = attempt(T.require_tensorrt)
out["build_fp32"] = attempt(lambda: T.build(trt, Path(fp32), Path(engine), "fp32", (16, 16)))
out["build_qdq_as_fp32"] = attempt(lambda: T.build(trt, Path(qdq), Path(engine), "fp32", (16, 16)))
out["runtime_load"] = attempt(lambda: B.TensorRTBackend.load(Path(fp32), device="cuda"))
out["engine_written"] = Path(engine).exists()

def missing_api():  # what TensorRT 11 does to code that still names BuilderFlag.FP16
    with B.trt_guard("tensorrt/fp16", log):
        getattr(trt.BuilderFlag, "FP16")
out["missing_api"] = attempt(missing_api)

for name in [m for m in sys.modules if m == "cuda" or m.startswith("cuda.")]:
    del sys.modules[name]
sys.modules["cuda"] = None  # as if cuda-bindings were not installed
out["probe_without_cuda_bindings"] = T.probe()
print(json.dumps(out))
'''


def _onnx_files(tmp: Path) -> tuple[Path, Path]:
    """A one-Conv FP32 model and its Q/DQ form, written with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 16, 16])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, 16, 16])
    conv = helper.make_node("Conv", ["image", "w"], ["logits"], pads=[1, 1, 1, 1])
    fp32 = helper.make_model(helper.make_graph([conv], "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 18)])
    s, z = numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z")
    q = helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"])
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])
    conv2 = helper.make_node("Conv", ["dq", "w"], ["logits"], pads=[1, 1, 1, 1])
    qdq = helper.make_model(helper.make_graph([q, dq, conv2], "g", [x], [y], [w, s, z]),
                            opset_imports=[helper.make_opsetid("", 18)])
    paths = tmp / "fp32.onnx", tmp / "qdq.onnx"
    for m, p in zip((fp32, qdq), paths):
        onnx.checker.check_model(m)
        onnx.save(m, str(p))
    return paths


def test_real_bindings_run_up_to_the_first_tensorrt_call(stubbed, tmp_path):
    tools, stub, sites = stubbed
    fp32, qdq = _onnx_files(tmp_path)
    seen = set()
    for site in sites.values():
        env = tools.stub_env(site, stub)
        r = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "tools"), str(fp32), str(qdq),
                            str(tmp_path / "x.engine")], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        v = out["version"]
        seen.add(v.split(".")[0])
        assert out["capabilities"]["strongly_typed"], v
        # tensorrt and cuda-bindings import; the device is what is missing, found before any build
        assert out["probe"] == "no CUDA device", (v, out["probe"])
        assert out["require"][0] == "BackendUnavailableError" and "no CUDA device" in out["require"][1], v
        assert out["capabilities"]["weak_typing_flags"] == v.startswith("10."), v  # probed, not parsed
        assert out["kept_errors"] == ["error 1", "error 2"] and out["kept_warnings"] == ["a warning"], v
        assert out["tail"] == " [TensorRT log: error 1 | error 2]", v
        # the stub's createInferBuilder returns NULL, as a machine without a usable TensorRT would
        kind, msg = out["build_fp32"]
        assert kind == "BackendUnavailableError" and "TensorRT builder" in msg and "nullptr" in msg, (v, out)
        kind, msg = out["build_qdq_as_fp32"]
        assert kind == "ArtifactError" and "is int8" in msg, (v, out)  # refused before the builder
        kind, msg = out["runtime_load"]
        assert kind == "BackendUnavailableError" and "cuda" in msg.lower(), (v, out)  # no device here
        assert not out["engine_written"], v
        assert out["probe_without_cuda_bindings"] == "cuda-bindings (NVIDIA cuda-python) not installed", v
        kind, msg = out["missing_api"]
        if v.startswith("11."):  # an AttributeError becomes a typed error with the log lines
            assert kind == "ArtifactError" and "AttributeError" in msg and "[TensorRT log: error 1" in msg, (v, out)
        else:
            assert kind == "no error", (v, out)
    assert {"10", "11"} <= seen or len(sites) < 2, seen
