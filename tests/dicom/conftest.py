"""Fixtures for the DICOM tests (helpers in dicom_fixtures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_fixtures import cine_file, ct_file, us_file  # noqa: E402


@pytest.fixture
def dicom_inputs(tmp_path) -> dict[str, Path]:
    d = tmp_path / "in"
    d.mkdir()
    return {"us": us_file(d / "us.dcm"), "cine": cine_file(d / "cine.dcm"), "ct": ct_file(d / "ct.dcm")}
