"""btseg.runtime: one API over the torch / onnxruntime / openvino / tensorrt backends.

Example::

    >>> from btseg.runtime import Segmenter
    >>> seg = Segmenter.load("runs/demo/student", threads=2)   # doctest: +SKIP
    >>> result = seg.segment(image, spacing_mm=0.1)            # doctest: +SKIP
"""

from btseg.runtime.inputs import Frame, iter_frames
from btseg.runtime.postprocess import Segmentation
from btseg.runtime.segmenter import Segmenter
from btseg.runtime.sources import FrameSource

__all__ = ["Frame", "FrameSource", "Segmentation", "Segmenter", "iter_frames"]
