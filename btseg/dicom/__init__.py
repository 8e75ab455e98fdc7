"""DICOM out and DICOM in over the network: the application layer above :mod:`btseg.runtime`.

* :mod:`btseg.dicom.seg` writes a DICOM Segmentation (SEG) whose frames are exactly the mask;
* :mod:`btseg.dicom.sr` writes a TID 1500 measurement report (Comprehensive 3D SR) that
  references the SEG segment and the source image;
* :mod:`btseg.dicom.node` is a pynetdicom Storage SCP that hands each received instance to a
  bounded queue and a worker (the worker is the predict path, given by ``btseg-serve``).

highdicom and pynetdicom come with ``pip install 'btseg[dicom]'``; nothing here is imported by
the runtime, so a cart that writes PNG/JSON only does not need them.
"""

from __future__ import annotations

from btseg.errors import BackendUnavailableError

EXTRA_HINT = "pip install 'btseg[dicom]'"


def require(module: str) -> None:
    """BackendUnavailableError naming the extra when ``module`` (highdicom, pynetdicom) is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise BackendUnavailableError(f"DICOM output needs {module}, which this install lacks: {EXTRA_HINT}")
