"""Machine facts (btseg.machine): /proc/cpuinfo parsed once, versions, the seeded probe frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from btseg import machine


@pytest.fixture
def fake_cpuinfo(tmp_path, monkeypatch):
    def write(text: str):
        p = tmp_path / "cpuinfo"
        p.write_text(text)
        monkeypatch.setattr(machine, "CPUINFO", str(p))
        machine.cpuinfo.cache_clear()
    yield write
    machine.cpuinfo.cache_clear()


def test_x86_cpuinfo(fake_cpuinfo):
    fake_cpuinfo("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: sse avx2 fma\n\n"
                 "processor\t: 1\nmodel name\t: Other\nflags\t\t: sse\n")
    assert machine.cpu_model() == "Test CPU"
    assert machine.cpu_flags() == {"sse", "avx2", "fma"}
    assert json.loads(machine.cpu_fingerprint()) == {"model name": "Test CPU", "flags": "avx2 fma sse"}


def test_arm_cpuinfo(fake_cpuinfo):
    fake_cpuinfo("processor\t: 0\nFeatures\t: fp asimd\nCPU part\t: 0xd08\n\nHardware\t: BCM2835\n")
    assert machine.cpu_model() == "BCM2835"
    assert machine.cpu_flags() == {"fp", "asimd"}
    assert json.loads(machine.cpu_fingerprint()) == {"Features": "asimd fp", "CPU part": "0xd08"}


def test_no_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "CPUINFO", str(tmp_path / "absent"))
    machine.cpuinfo.cache_clear()
    try:
        assert machine.cpuinfo() == {} and machine.cpu_flags() == set()
        assert machine.cpu_fingerprint()  # platform facts, never an exception
    finally:
        machine.cpuinfo.cache_clear()


def test_versions():
    v = machine.library_versions(["numpy", "btseg-no-such-dist"])
    assert v["numpy"] == np.__version__ and v["btseg-no-such-dist"] is None
    assert machine.module_versions(["numpy", "btseg_no_such_module"]) == {"numpy": np.__version__,
                                                                           "btseg_no_such_module": None}


def test_the_probe_frame_is_the_same_everywhere():
    a = machine.probe_frame((5, 7))
    assert a.dtype == np.uint8 and a.shape == (5, 7)
    # the pixels every timing ran on before this module existed: same seed, same generator
    assert np.array_equal(a, np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8))
    x = machine.probe_input((1, 1, 4, 4))
    assert x.dtype == np.float32 and np.array_equal(x, machine.probe_input((1, 1, 4, 4)))
