"""Run ``btseg-serve dicom`` (or dcmtk's storescp) in a subprocess for the node tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """``python -m btseg.cli.serve dicom`` on a free port; its stderr goes to ``log``."""

    def __init__(self, out: Path, *args: str, port: int | None = None) -> None:
        self.out, self.port = out, port or free_port()
        self.log = out.parent / f"{out.name}-{self.port}.log"
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "btseg.cli.serve", "dicom", "--out", str(out), "--port", str(self.port),
             "--no-overlay", "--threads", "1", *args], stdout=subprocess.DEVNULL, stderr=open(self.log, "w"),
            env=env, cwd=REPO)
        self.wait_for("listening on", timeout=120)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float = 60, count: int = 1) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.text()
            if text.count(needle) >= count:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited {self.proc.returncode}:\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} x{count} not in the node's log within {timeout} s:\n{self.text()}")

    def terminate(self, timeout: float = 40) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def tool(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
