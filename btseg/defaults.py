"""The bundled default model package and sample images (``btseg/assets``).

``make weights`` writes them (see :mod:`btseg.cli.demo`); ``btseg-predict``, ``btseg-export``
and ``btseg-bench`` fall back to them when run with no arguments.  The model was trained
on synthetic phantoms and is not for clinical use.
"""

from __future__ import annotations

from pathlib import Path

from btseg.errors import ConfigError
from btseg.layout import is_package

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_PACKAGE = ASSETS / "default"
SAMPLES = ASSETS / "samples"


def default_package() -> Path:
    """The bundled student package, or a clear error saying how to make it."""
    if not is_package(DEFAULT_PACKAGE):
        raise ConfigError(f"the bundled default model is missing ({DEFAULT_PACKAGE}): run `make weights`, "
                          "or pass a model package")
    return DEFAULT_PACKAGE


def samples_dir() -> Path:
    """The bundled sample images in the BUSI layout (images + masks)."""
    if not SAMPLES.is_dir():
        raise ConfigError(f"the bundled sample images are missing ({SAMPLES}): run `make weights`, or pass inputs")
    return SAMPLES


def sample_images() -> list[Path]:
    """The bundled sample *images* (masks excluded), sorted."""
    return sorted(p for p in samples_dir().rglob("*.png") if "_mask" not in p.stem)
