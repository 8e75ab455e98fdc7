"""DICOM out and DICOM in over the network: the application layer above :mod:`btseg.runtime`.

* :mod:`btseg.dicom.seg` writes a DICOM Segmentation (SEG) whose frames are exactly the mask;
* :mod:`btseg.dicom.sr` writes a TID 1500 measurement report (Comprehensive 3D SR) that
  references the SEG segment and the source image;
* :mod:`btseg.dicom.node` is a pynetdicom Storage SCP that hands each received instance to a
  bounded queue and a worker (the worker is the predict path, given by ``btseg-serve``).

highdicom and pynetdicom come with ``pip install 'btseg[dicom]'`` (the commands check for them:
:func:`btseg.cli.common.require_extra`); nothing here is imported by the runtime, so a cart that
writes PNG/JSON only does not need them.
"""

from __future__ import annotations
