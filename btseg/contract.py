"""What a model promises its callers, computed from its constructor arguments alone.

Bottom layer, no torch: the runtime and the ``model.json`` schema check sizes with the same
rules the models use (:func:`size_divisor`).

Like segmentation_models.pytorch's ``output_stride``: every registered model states the
factor its input sides must be divisible by and the channels of the features that feature
distillation matches.  Configs, export and the runtime check an input size against it
before any work, and :func:`btseg.models.create_model` validates the arguments through it
*before* allocating a single weight (a hostile ``widths=[10**6, ...]`` is refused, not
allocated).

Example::

    >>> c = ModelContract("simplified_unet", size_divisor=16, feature_channels=(128, 64, 32, 16, 8))
    >>> c.check_size((128, 128))
    (128, 128)
    >>> c.check_size((144, 144))
    Traceback (most recent call last):
    btseg.errors.ConfigError: input size 144x144: simplified_unet needs each side a positive multiple of 16 ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from btseg.errors import ConfigError

# the probability threshold of a package's masks: its one default and its one range, (0, 1) open
# at both ends (0 would mark every pixel, 1 none); model.json, TrainConfig and the runtime use these
DEFAULT_THRESHOLD = 0.5
THRESHOLD_RANGE = (0.0, 1.0)
# the clean-up steps a package's ``postprocess`` may turn on (btseg.runtime.postprocess), in order
POSTPROCESS_STEPS = ("largest_component", "fill_holes")
MAX_WIDTH = 4096  # channels per level; the paper teacher's widest is 1024
MAX_LEVELS = 8
MIN_SIDE, MAX_SIDE = 8, 8192  # network input side, pixels (model.json's schema checks these)
MAX_PARAMS_PROXY = 4e8  # 36 * sum(width^2): about 1.6 GB of fp32 weights


def side_fits(side: int, divisor: int) -> bool:
    """Whether an input side is a positive multiple of the model's ``divisor`` (its downsampling)."""
    return side >= divisor and side % divisor == 0


def params_proxy(widths: Sequence[int]) -> float:
    """A bound on a U-Net's parameter count from its widths (3x3 convs: 36 * sum(width^2))."""
    return 36 * sum(int(x) * int(x) for x in widths)


@dataclass(frozen=True)
class ModelContract:
    """``size_divisor``: each input side must be a positive multiple of it (the model's total
    downsampling); ``feature_channels``: channels of ``forward_features``' list, deep to shallow."""

    architecture: str
    size_divisor: int
    feature_channels: tuple[int, ...]

    def check_size(self, size: Sequence[int], what: str = "input size") -> tuple[int, int]:
        """Return ``(H, W)`` or raise :class:`ConfigError` naming the size and the divisor."""
        if len(size) != 2:
            raise ConfigError(f"{what} {tuple(size)}: expected two numbers, H W")
        h, w = int(size[0]), int(size[1])
        d = self.size_divisor
        if not (side_fits(h, d) and side_fits(w, d)):
            raise ConfigError(f"{what} {h}x{w}: {self.architecture} needs each side a positive multiple of {d} "
                              f"(it downsamples {d}x)")
        return h, w

    def to_dict(self) -> dict[str, Any]:
        return {"size_divisor": self.size_divisor, "feature_channels": list(self.feature_channels)}


def check_widths(widths: Any, architecture: str, levels: int | None = None) -> list[int]:
    """Widths must be a list of ``levels`` (or 2..MAX_LEVELS) integers in 1..MAX_WIDTH."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ConfigError(f"{architecture}: widths {widths!r}: expected a list of integers")
    out = []
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) and not (isinstance(w, float) and w.is_integer()):
            raise ConfigError(f"{architecture}: widths {list(widths)!r}: expected integers")
        if not 1 <= int(w) <= MAX_WIDTH:
            raise ConfigError(f"{architecture}: width {w} out of range: expected 1..{MAX_WIDTH}")
        out.append(int(w))
    if levels is not None and len(out) != levels:
        raise ConfigError(f"{architecture}: widths {out}: expected exactly {levels} values")
    if not 2 <= len(out) <= MAX_LEVELS:
        raise ConfigError(f"{architecture}: widths {out}: expected 2..{MAX_LEVELS} levels")
    return out


def _unet_divisor(widths: list[int]) -> int:
    return 2 ** (len(widths) - 1)  # one 2x pooling per level below the top


# architecture -> its total downsampling factor from its widths; the models' ``contract()``
# use these, and so does the torch-free model.json schema
_DIVISORS = {"unext": lambda widths: 32}  # three poolings + two stride-2 patch embeddings


# architecture -> scale -> widths (Ultralytics-style n/s/m/l).  ``l`` is the paper student; the
# smaller ones scale every width by one multiplier at full depth, the rule that lost the least
# lesion Dice per GMAC saved in benchmarks/results/scales-sweep.json (README "Model scales")
SCALES: dict[str, dict[str, list[int]]] = {
    "simplified_unet": {"n": [12, 24, 48, 96, 192], "s": [16, 32, 64, 128, 256], "m": [24, 48, 96, 192, 384],
                        "l": [32, 64, 128, 256, 512]},
}


def scale_widths(architecture: str, scale: Any, widths: Any = None) -> Any:
    """The widths of ``architecture`` at ``scale`` (None: ``widths`` unchanged).

    Raises:
        ConfigError: the architecture has no scales, the scale is unknown (the valid ones are
            named), or ``widths`` is given too and differs from the scale's.
    """
    if scale is None:
        return widths
    table = SCALES.get(architecture)
    if not table:
        have = ", ".join(sorted(SCALES))
        raise ConfigError(f"{architecture}: has no scales (scale={scale!r}); models with scales: {have}")
    if not isinstance(scale, str) or scale not in table:
        raise ConfigError(f"{architecture}: scale {scale!r} unknown; valid scales: {', '.join(table)}")
    if widths is not None and list(widths) != table[scale]:
        raise ConfigError(f"{architecture}: scale {scale!r} has widths {table[scale]}, not {list(widths)}; "
                          "give one of scale or widths")
    return list(table[scale])


def size_divisor(architecture: str, widths: Sequence[int]) -> int:
    """Each input side of ``architecture`` built with ``widths`` must be a multiple of this."""
    return _DIVISORS.get(architecture, _unet_divisor)(list(widths))


def check_threshold(value: Any, name: str = "threshold") -> float:
    """``value`` if it is a finite number inside :data:`THRESHOLD_RANGE`, else ConfigError naming it."""
    lo, hi = THRESHOLD_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value < hi:
        raise ConfigError(f"{name}={value!r}: expected a finite number in ({lo:g}, {hi:g})")
    return value


def default_postprocess() -> dict[str, bool]:
    """Every post-processing step, off: what a package gets unless it says otherwise."""
    return {k: False for k in POSTPROCESS_STEPS}


def check_postprocess(spec: Any, name: str = "postprocess") -> dict[str, bool]:
    """``spec`` as a dict of known steps -> bool; :class:`ConfigError` naming the bad key or value."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{name}={spec!r}: expected a dict of {', '.join(POSTPROCESS_STEPS)} -> true/false")
    for k, v in spec.items():
        if k not in POSTPROCESS_STEPS:
            raise ConfigError(f"{name}.{k}: unknown step; expected one of {', '.join(POSTPROCESS_STEPS)}")
        if not isinstance(v, bool):
            raise ConfigError(f"{name}.{k}={v!r}: expected true or false")
    return spec
