"""Every option of one export, as one typed, JSON-able dataclass (like ``TrainConfig`` and
``BenchConfig``).  The CLI parses strings into it; :func:`btseg.export.run_export` and
:func:`btseg.export.plan.prepare` take it whole instead of spelling the options out.

Example::

    >>> opts = ExportOptions(targets=("onnx", "openvino"), precisions=("fp32", "int8"),
    ...                      calib_data="data/phantom")
    >>> ExportOptions.from_dict(opts.to_dict()) == opts
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from btseg.errors import ConfigError


@dataclass(frozen=True)
class ExportOptions:
    """What to build and how to check it.

    Build:
        targets, precisions: names or ``all`` (:data:`btseg.specs.EXPORT_TARGETS`, ``PRECISIONS``).
        calib_data, calib_size, calib_method: INT8 calibration images, how many, range estimator.
        input_size: ``(H, W)`` of the exported graph (default: the package's; checked against
            the model's contract).
        dynamic_batch, opset, workspace_gib: graph batch axis, ONNX opset, TensorRT workspace.
        from_onnx: build TensorRT from this ONNX file instead of the package weights.
        out: write the artifacts to this package (default: the source package).
    Verify:
        verify, verify_gate: run verification; a failure raises (gate) or only marks the artifact.
        verify_data, verify_n: verification images (default: ``calib_data``, others than the
            calibration ones) and how many.
        tolerances: gate overrides (``{"int8": 0.98}`` or ``["int8=0.98"]``).
        skip_bad: leave the calibration / verification sets' bad items out (each named once)
            instead of refusing them.
    """

    targets: tuple[str, ...] = ("onnx",)
    precisions: tuple[str, ...] = ("fp32",)
    calib_data: str | None = None
    calib_size: int = 64
    calib_method: str = "minmax"
    input_size: tuple[int, int] | None = None
    dynamic_batch: bool = False
    opset: int | None = None
    workspace_gib: float | None = None
    from_onnx: str | None = None
    out: str | None = None
    verify: bool = True
    verify_gate: bool = True
    verify_data: str | None = None
    verify_n: int = 32
    tolerances: Any = field(default=None, compare=False)
    skip_bad: bool = False

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: normalise once)
        for name in ("targets", "precisions"):
            v = getattr(self, name)
            set_(name, (v,) if isinstance(v, str) else tuple(str(x) for x in v))
        for name in ("calib_data", "from_onnx", "out", "verify_data"):
            v = getattr(self, name)
            if v is not None:
                set_(name, str(Path(v)))
        if self.input_size is not None:
            set_("input_size", tuple(int(x) for x in self.input_size) or None)
        for name in ("calib_size", "verify_n"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected >= 1")

    def replace(self, **overrides: Any) -> "ExportOptions":
        """A copy with some fields changed; re-validated."""
        import dataclasses

        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown export option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tolerances"] = self.tolerances if isinstance(self.tolerances, (dict, list, type(None))) else str(self.tolerances)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExportOptions":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown export option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def as_options(options: ExportOptions | None, targets: Sequence[str] | None, precisions: Sequence[str] | None,
               **kwargs: Any) -> ExportOptions:
    """``options``, or one built from the older keyword form (``targets, precisions, calib_data=...``)."""
    if options is not None:
        if targets is not None or precisions is not None or kwargs:
            raise ConfigError("pass either options=ExportOptions(...) or keyword options, not both")
        return options
    given = {k: v for k, v in kwargs.items() if v is not None}
    if targets is not None:
        given["targets"] = targets
    if precisions is not None:
        given["precisions"] = precisions
    return ExportOptions().replace(**given)
