"""What export passes between planning, the builders and installation: a :class:`Job` (one
artifact to build) and a :class:`Built` (one staged artifact).

Imports nothing from the rest of ``btseg.export``: every builder module imports it, and the
pipeline imports the builders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Job:
    """One artifact to build."""

    target: str
    precision: str

    @property
    def id(self) -> str:
        """The artifact id in ``manifest.json`` (add-or-replace key)."""
        return f"{self.target}-{self.precision}"


@dataclass
class Built:
    """A staged artifact: ``staged`` is what a backend loads, ``stage_root`` what gets installed."""

    staged: Path
    stage_root: Path
    name: str  # final path relative to the package (a file, or a directory for OpenVINO)
    main: str  # for a directory: the file the manifest points at
    opset: int | None
    inputs: list[dict]
    outputs: list[dict]
    extra: dict[str, Any]
