"""``btseg-serve dicom`` against real dcmtk clients (echoscu, storescu) and a real dcmtk
receiver (storescp) for --forward; outputs checked with dciodvfy and highdicom."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from btseg.dicom.seg import seg_mask
from btseg.dicom.sr import sr_values
from dicom_fixtures import need, us_file
from dicom_util import write_dicom
from node_util import Node, free_port, tool

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.slow


def store(node: Node, *files: Path, aet: str = "CART1") -> "object":
    return tool([need("storescu"), "-d", "-aet", aet, "-aec", "BTSEG", "127.0.0.1", str(node.port),
                 *map(str, files)])


def echo(node: Node, aet: str = "CART1") -> int:
    return tool([need("echoscu"), "-aet", aet, "-aec", "BTSEG", "127.0.0.1", str(node.port)]).returncode


def dciodvfy_errors(path: Path) -> list[str]:
    out = tool([need("dciodvfy"), str(path)])
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(("Error", "Abort"))]


def uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_node_stores_segments_refuses_ct_keeps_serving_and_stops_on_sigterm(dicom_inputs, tmp_path):
    corrupt = write_dicom(tmp_path / "corrupt.dcm", np.zeros((64, 64), np.uint8))
    ds = pydicom.dcmread(corrupt)
    ds.PixelData = ds.PixelData[:100]  # truncated pixel data: the header is fine, decoding is not
    ds.save_as(corrupt)
    out = tmp_path / "node"
    node = Node(out, "--allow-aet", "CART1")
    try:
        assert echo(node) == 0
        assert store(node, dicom_inputs["us"]).returncode == 0
        u = uid(dicom_inputs["us"])
        node.wait_for(f"sop={u} ok")
        res = out / "results"
        rec = json.loads((res / f"{u}.json").read_text())
        png = cv2.imread(str(res / f"{u}_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
        assert png.any() and np.array_equal(seg_mask(res / f"{u}_seg.dcm"), png)
        assert sr_values(res / f"{u}_sr.dcm")["area_mm2"] == pytest.approx(rec["area_mm2"], rel=1e-12)
        assert dciodvfy_errors(res / f"{u}_seg.dcm") == [] and dciodvfy_errors(res / f"{u}_sr.dcm") == []
        assert (out / "received" / f"{u}.dcm").is_file() and not list((out / "incoming").iterdir())
        # a CT is refused by status (storescu fails), recorded, and the node keeps serving
        r = store(node, dicom_inputs["ct"])
        assert r.returncode != 0 and "0xc001" in (r.stdout + r.stderr).lower()
        ct = uid(dicom_inputs["ct"])
        assert "not ultrasound" in json.loads((out / "refused" / f"{ct}.json").read_text())["refused"]
        assert not (res / f"{ct}_seg.dcm").exists()
        # a dataset whose pixels cannot be decoded: stored, then refused by the worker, recorded
        assert store(node, corrupt).returncode == 0
        node.wait_for(f"sop={uid(corrupt)} refused")
        assert (out / "refused" / f"{uid(corrupt)}.json").is_file()
        assert echo(node) == 0 and store(node, dicom_inputs["cine"]).returncode == 0
        node.wait_for(f"sop={uid(dicom_inputs['cine'])} ok")
        assert (res / f"{uid(dicom_inputs['cine'])}_f0001_seg.dcm").is_file()
        log = node.text()
        line = next(x for x in log.splitlines() if f"sop={u} ok" in x)
        assert line.split()[2].startswith("CART1@127.0.0.1:") and "total_ms=" in line and "area_mm2=" in line
        t0 = time.monotonic()
        assert node.terminate() == 0
        assert time.monotonic() - t0 < 35 and "stopped cleanly" in node.text()
    finally:
        node.kill()


def test_a_second_node_on_the_same_out_is_refused(tmp_path):
    node = Node(tmp_path / "node")
    try:
        r = tool([sys.executable, "-m", "btseg.cli.serve", "dicom", "--out", str(tmp_path / "node"), "--port",
                  str(free_port())], timeout=120)
        assert r.returncode == 2 and "another btseg-predict run" in r.stderr and r.stderr.count("\n") == 1
    finally:
        node.kill()


def test_allow_aet_rejects_other_callers(tmp_path):
    node = Node(tmp_path / "node", "--allow-aet", "CART1", "--allow-aet", "CART2")
    try:
        assert echo(node, "CART2") == 0
        assert echo(node, "INTRUDER") != 0
    finally:
        node.kill()


def test_restart_processes_what_was_received_but_not_processed(tmp_path):
    """An instance in incoming/ (written before C-STORE success, node killed before the worker
    ran) is processed at the next start; a file the killed run had begun (its journal says so)
    is removed first, so the instance is processed, not refused over a half-written file."""
    from btseg.dicom.spool import Spool

    src = us_file(tmp_path / "us.dcm")
    u = uid(src)
    spool = Spool(tmp_path / "node")
    spool.receive(u, src.read_bytes(), {"calling_aet": "CART1", "address": "10.0.0.9:4000"})
    (spool.results / f"{u}_mask.png").write_bytes(b"half a png")  # killed mid-write, no record
    (spool.results / ".btseg-predict.journal").write_text(json.dumps({"pid": 1}) + "\n" +
                                                          json.dumps({"begin": f"{u}_mask.png"}) + "\n")
    node = Node(tmp_path / "node")
    try:
        log = node.wait_for(f"sop={u} ok")
        assert "CART1@10.0.0.9:4000 (recovered)" in log and "removed 1 unfinished output(s)" in log
        assert cv2.imread(str(spool.results / f"{u}_mask.png")) is not None
        assert not list(spool.incoming.iterdir()) and (spool.received / f"{u}.dcm").is_file()
    finally:
        node.kill()


def test_forward_sends_seg_and_sr_to_a_second_node(dicom_inputs, tmp_path):
    import subprocess

    pacs_dir = tmp_path / "pacs"
    pacs_dir.mkdir()
    pacs_port = free_port()
    pacs = subprocess.Popen([need("storescp"), "-aet", "PACS", "-od", str(pacs_dir), str(pacs_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = Node(tmp_path / "node", "--forward", f"127.0.0.1:{pacs_port}:PACS")
    try:
        time.sleep(0.5)
        assert store(node, dicom_inputs["us"]).returncode == 0
        line = node.wait_for(f"sop={uid(dicom_inputs['us'])} ok")
        assert "forwarded to PACS@127.0.0.1" in line and "=0x0000, " in line
        got = sorted(pydicom.dcmread(p).Modality for p in pacs_dir.iterdir())
        assert got == ["SEG", "SR"]
    finally:
        node.kill()
        pacs.kill()
        pacs.wait(10)


def test_a_full_queue_answers_out_of_resources(tmp_path, caplog):
    """Back-pressure, in process: the worker is held; with --queue 1 the third instance gets 0xA700."""
    from btseg.dicom.node import DicomNode, NodeConfig, Outcome

    import logging

    caplog.set_level(logging.INFO, logger="btseg.serve")
    release = threading.Event()

    def slow(path: Path) -> Outcome:
        release.wait(30)
        return Outcome("ok", "held")

    files = [us_file(tmp_path / f"u{i}.dcm") for i in range(3)]
    port = free_port()
    node = DicomNode(NodeConfig(out=tmp_path / "node", port=port, queue=1), slow)
    node.start()
    try:
        fake = Node.__new__(Node)
        fake.port = port
        r1 = store(fake, files[0])
        time.sleep(0.5)  # the worker takes it and holds it
        r2 = store(fake, files[1], files[2])
        assert r1.returncode == 0 and r2.returncode != 0
        assert "0xa700" in (r2.stdout + r2.stderr).lower() and node.counts["busy"] == 1
        assert node.counts["stored"] == 2 and not (node.spool.incoming / f"{uid(files[2])}.dcm").exists()
        assert f"sop={uid(files[2])} busy: queue full (1 waiting); answered 0xA700" in caplog.text
    finally:
        release.set()
        assert node.stop(10)


def test_the_worker_survives_a_failure_and_keeps_the_instance_for_restart(tmp_path, monkeypatch):
    """Fault injection: moving a processed file fails (disk full); the node keeps serving and
    the instance stays in incoming/ for the next start."""
    from btseg.dicom.node import DicomNode, NodeConfig, Outcome

    seen = []
    node = DicomNode(NodeConfig(out=tmp_path / "node", port=free_port()), lambda p: seen.append(p) or Outcome("ok"))
    real_done = node.spool.done
    calls = {"n": 0}

    def done(path):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real_done(path)

    monkeypatch.setattr(node.spool, "done", done)
    node.start()
    try:
        fake = Node.__new__(Node)
        fake.port = node.cfg.port
        a, b = us_file(tmp_path / "a.dcm"), us_file(tmp_path / "b.dcm")
        assert store(fake, a).returncode == 0 and store(fake, b).returncode == 0
        end = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.2)
        assert [p.stem for p in node.spool.backlog()] == [uid(a)]
        assert (node.spool.received / f"{uid(b)}.dcm").is_file()
    finally:
        assert node.stop(10)
