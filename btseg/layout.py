"""The model package's file layout: every file name of a package, spelled once.

Bottom layer (no btseg imports), so :mod:`btseg.defaults`, :mod:`btseg.package`, the CLI,
the bench and ``tools/`` all name a package's files through here::

    model.safetensors   weights            (WEIGHTS,  weights_path)
    model.json          ModelConfig        (CONFIG,   config_path)
    manifest.json       exported artifacts (MANIFEST, manifest_path)

Reading and writing them stays :mod:`btseg.package`'s job (schema and integrity checks).

Example::

    >>> config_path("runs/demo/student").name
    'model.json'
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = "model.safetensors"
CONFIG = "model.json"
MANIFEST = "manifest.json"
# any one set of these files present = the directory is (meant to be) a package
PACKAGE_MARKERS = ((CONFIG,), (MANIFEST, WEIGHTS))


def config_path(root: str | Path) -> Path:
    """``root/model.json``."""
    return Path(root) / CONFIG


def manifest_path(root: str | Path) -> Path:
    """``root/manifest.json``."""
    return Path(root) / MANIFEST


def weights_path(root: str | Path) -> Path:
    """``root/model.safetensors``."""
    return Path(root) / WEIGHTS


def is_package(root: str | Path) -> bool:
    """Whether ``root`` holds a model config (a trained package, exported or not)."""
    return config_path(root).is_file()
