"""Export targets as code: each :class:`~btseg.specs.ExportTarget` of
:data:`btseg.specs.EXPORT_TARGETS` resolved to its builder and probe, plus the rows of the
targets table.

The specs are the one home of what a target is (formats, precisions, calibration methods,
builder, probe, verifying backends, devices, recorded toolchain); planning
(:mod:`btseg.export.plan`), the pipeline, verification and ``btseg-export --target`` read
them through here, at call time, so a target registered in ``EXPORT_TARGETS`` is planned,
built and verified like the built-in ones.

Example::

    >>> names()
    ('onnx', 'openvino', 'tensorrt')
    >>> spec("openvino").calib_methods
    ('minmax', 'percentile')
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from btseg.errors import ConfigError
from btseg.specs import CALIB_METHODS, EXPORT_TARGETS, PRECISIONS, ExportTarget  # noqa: F401 (re-exported)

MIN_OPSET = 17
DEFAULT_OPSET = 18
TARGETS = tuple(EXPORT_TARGETS)  # the built-in targets (CLI choices); names() sees registered ones too


def names() -> tuple[str, ...]:
    """Every export target registered now."""
    return tuple(EXPORT_TARGETS)


def spec(name: str) -> ExportTarget:
    """The spec of target ``name``; ConfigError naming the known ones."""
    if name not in EXPORT_TARGETS:
        raise ConfigError(f"unknown target {name!r}; expected one of {', '.join(EXPORT_TARGETS)} or all")
    return EXPORT_TARGETS[name]


def resolve(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (imported now); a callable is returned as is."""
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def unavailable(target: str, precision: str) -> str | None:
    """Why this machine cannot build ``target``/``precision`` (the spec's probe), or None."""
    return resolve(spec(target).probe)(precision)


def table() -> list[tuple[str, str, str, str, str, str]]:
    """(target, files, precisions, INT8 calibration, verified on, notes) rows: docs/export.md's
    targets table and ``--help`` (a test keeps the docs equal to them)."""
    return [(t.name, " ".join(t.formats), ", ".join(t.precisions), ", ".join(t.calib_methods),
             ", ".join(t.verified_by), t.note) for t in EXPORT_TARGETS.values()]


def markdown() -> str:
    """:func:`table` as the Markdown table in docs/export.md."""
    head = ("target", "files", "precisions", "INT8 calibration", "verified on", "notes")
    rows = [head, tuple("-" * len(h) for h in head), *table()]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)
