"""One exception hierarchy for btseg.

Every error a user can cause derives from :class:`BtsegError`.  The CLI turns any of
them into a one-line message and exit code 2 (see :mod:`btseg.cli.common`); nothing
else in the package should print a traceback for bad input.

Example::

    >>> from btseg.errors import DataError
    >>> raise DataError("benign/benign (1).png: mask 'benign (1)_mask.png' is missing")
"""

from __future__ import annotations


class BtsegError(Exception):
    """Base class of every error btseg raises on purpose."""

    exit_code = 2


class DataError(BtsegError):
    """Bad input data: a missing/unreadable/truncated file, a size mismatch, an empty set."""


class ConfigError(BtsegError):
    """A bad option, preset, model name or configuration value."""


class ArtifactError(BtsegError):
    """A bad model package or artifact: missing file, wrong sha256, wrong format."""


class BackendUnavailableError(BtsegError):
    """An optional backend (tensorrt, cuda-bindings, openvino...) is not installed or has no device."""


class VerificationError(BtsegError):
    """An exported artifact disagrees with the PyTorch reference beyond its tolerance."""


class ModalityError(DataError):
    """A DICOM whose modality btseg does not segment (CT, MR...) without an explicit allowance."""


class SchemaError(ArtifactError):
    """``model.json`` or ``manifest.json`` is malformed: wrong type, out-of-range or missing field."""


class IntegrityError(ArtifactError):
    """A package file differs from what its manifest / ``model.json`` records (sha256, size,
    binding to the weights), or an artifact path leaves the package / is not a regular file."""


class OutputError(ArtifactError):
    """A model produced non-finite (NaN / inf) logits: the artifact or its weights are broken."""
