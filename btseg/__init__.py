"""btseg: breast-tumour segmentation in ultrasound, from distillation to the cart.

Stages: :mod:`btseg.data` -> :mod:`btseg.distill` -> model package (:mod:`btseg.package`)
-> :mod:`btseg.export` -> :mod:`btseg.runtime` -> :mod:`btseg.bench`.
"""

__version__ = "0.1.0"
