"""What machine a benchmark ran on: CPU, flags, GPU, OS, library versions, Jetson power mode.

Numbers without the machine are not results.  Everything here is best effort and never
raises: a probe that fails records ``None`` (absent) rather than stopping a benchmark.

Example::

    >>> info = collect()
    >>> sorted(info)[:3]
    ['cpu', 'gpu', 'jetson']
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from btseg.machine import cpu_flags, cpu_model, module_versions

# instruction-set flags that change which kernels ORT / OpenVINO / torch pick
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
LIBRARIES = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "tensorrt", "numpy", "cv2")


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    """stdout of ``cmd`` or None; guarded so a hung tool cannot hang the benchmark."""
    if not shutil.which(cmd[0]):
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def cpu_info() -> dict[str, Any]:
    """Model name, physical/logical cores, the flags that matter, affinity."""
    model, flags = cpu_model(), cpu_flags()
    try:
        import psutil

        physical, logical = psutil.cpu_count(logical=False), psutil.cpu_count(logical=True)
    except ImportError:
        physical, logical = None, os.cpu_count()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {"model": model, "arch": platform.machine(), "cores_physical": physical, "cores_logical": logical,
            "cores_usable": affinity, "flags": {f: (f in flags) for f in CPU_FLAGS}}


def gpu_info() -> dict[str, Any] | None:
    """CUDA device name, driver, memory (torch.cuda, then nvidia-smi); None if no GPU."""
    out: dict[str, Any] = {}
    try:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            out.update(name=p.name, memory_mb=round(p.total_memory / 2**20), cuda=torch.version.cuda,
                       capability=f"{p.major}.{p.minor}", count=torch.cuda.device_count())
    except ImportError:
        pass
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if smi:
        name, driver, mem = (s.strip() for s in (smi.splitlines()[0].split(",") + ["", "", ""])[:3])
        out.setdefault("name", name)
        out["driver"] = driver
        out.setdefault("memory", mem)
    return out or None


def jetson_info() -> dict[str, Any] | None:
    """nvpmodel power mode and one tegrastats line on a Jetson; None elsewhere."""
    if not os.path.exists("/etc/nv_tegra_release") and not shutil.which("nvpmodel"):
        return None
    info: dict[str, Any] = {}
    try:
        with open("/etc/nv_tegra_release", encoding="utf-8") as f:
            info["l4t"] = f.readline().strip()
    except OSError:
        pass
    info["nvpmodel"] = _run(["nvpmodel", "-q"])
    if shutil.which("tegrastats"):
        try:
            # tegrastats streams forever: read one sample then stop it
            p = subprocess.Popen(["tegrastats", "--interval", "200"], stdout=subprocess.PIPE, text=True)
            try:
                info["tegrastats"] = p.stdout.readline().strip() if p.stdout else None
            finally:
                p.terminate()
                p.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            info["tegrastats"] = None
    return info


def library_versions() -> dict[str, str | None]:
    """Version of each library, None if not installed (import errors of broken installs too)."""
    return module_versions(LIBRARIES)


def collect() -> dict[str, Any]:
    """Everything above, as one JSON-able dict."""
    try:
        import psutil

        mem_total = round(psutil.virtual_memory().total / 2**20)
    except ImportError:
        mem_total = None
    return {"cpu": cpu_info(), "gpu": gpu_info(), "jetson": jetson_info(),
            "memory_total_mb": mem_total, "os": platform.platform(), "python": sys.version.split()[0],
            "hostname": platform.node(), "versions": library_versions()}


def short(info: dict[str, Any]) -> str:
    """One line for a report header: CPU (cores), GPU, OS."""
    cpu = info.get("cpu") or {}
    gpu = (info.get("gpu") or {}).get("name")
    # every probed flag that is present: a row that "ran as bf16" must be explainable from this line
    flags = ",".join(k for k, v in (cpu.get("flags") or {}).items() if v and k in CPU_FLAGS)
    s = f"{cpu.get('model')} ({cpu.get('cores_physical')}C/{cpu.get('cores_logical')}T usable {cpu.get('cores_usable')}; {flags or 'no avx2'})"
    return s + (f", GPU {gpu}" if gpu else "") + f", {info.get('os')}, Python {info.get('python')}"
