"""Pick a model for a latency budget: the most accurate verified artifact whose p90 fits.

``btseg-bench --budget-ms X PKG...`` times every verified artifact of the given packages
on this machine (the bench's own rows and timer, :func:`btseg.bench.runner.run`), then
:func:`choose` names the artifact with the highest **recorded validation lesion Dice** (the
package's ``model.json``: benign and malignant validation images, weighted by their counts)
whose end-to-end p90 is within the budget, and says in one line why every other
package/artifact was not chosen.

Example::

    >>> rows = [{"package": "a", "backend": "openvino", "precision": "int8", "status": "ok",
    ...          "latency": {"e2e": {"p90_ms": 5.0}}}]
    >>> d = choose(rows, {"a": (0.9, "")}, budget_ms=10.0)
    >>> d.chosen["package"], d.rejected
    ('a', [])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from btseg.errors import BtsegError, ConfigError


def lesion_dice(package: str | Path) -> tuple[float | None, str]:
    """The package's recorded validation lesion Dice, or ``(None, why not)``."""
    from btseg.package import load_package

    try:
        metrics = load_package(package).config.metrics or {}
    except BtsegError as e:
        return None, str(e).splitlines()[0]
    per_class = ((metrics.get("val") or {}).get("per_class")) or {}
    total, n = 0.0, 0
    for label in ("benign", "malignant"):
        block = (per_class.get(label) or {}).get("dice") or {}
        mean, count = block.get("mean"), block.get("n")
        if isinstance(mean, (int, float)) and isinstance(count, int) and count > 0 and math.isfinite(mean):
            total += float(mean) * count
            n += count
    if n == 0:
        return None, "model.json records no validation lesion Dice (metrics.val.per_class benign/malignant)"
    return total / n, ""


@dataclass
class Decision:
    """``chosen``: the winning row (None: nothing fits); ``rejected``: ``(label, reason)`` per other row."""

    budget_ms: float
    chosen: dict[str, Any] | None = None
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"budget_ms": self.budget_ms, "chosen": None if self.chosen is None else label(self.chosen),
                "chosen_p90_ms": p90(self.chosen) if self.chosen else None,
                "chosen_lesion_dice": self.chosen.get("lesion_dice") if self.chosen else None,
                "rejected": [{"artifact": a, "reason": r} for a, r in self.rejected]}


def label(row: Mapping[str, Any]) -> str:
    """``PACKAGE backend/precision`` (the package's directory as given)."""
    return f"{row['package']} {row['backend']}/{row['precision']}"


def p90(row: Mapping[str, Any]) -> float | None:
    """End-to-end p90 (ms) of a bench row, None when it was not timed."""
    v = ((row.get("latency") or {}).get("e2e") or {}).get("p90_ms")
    return float(v) if isinstance(v, (int, float)) else None


def choose(rows: list[dict[str, Any]], dice: Mapping[str, tuple[float | None, str]], budget_ms: float) -> Decision:
    """The most accurate row whose p90 <= ``budget_ms`` (ties: the faster); every other row
    gets one reason.  ``dice`` maps a row's ``package`` to :func:`lesion_dice`'s answer."""
    if not isinstance(budget_ms, (int, float)) or not math.isfinite(budget_ms) or budget_ms < 0:
        raise ConfigError(f"--budget-ms {budget_ms!r}: expected a finite number of milliseconds >= 0")
    d = Decision(float(budget_ms))
    fits = []
    for r in rows:
        acc, why = dice.get(r["package"], (None, "no recorded validation lesion Dice"))
        r["lesion_dice"] = acc
        t = p90(r)
        if r.get("status") != "ok":
            d.rejected.append((label(r), f"{r.get('status', 'failed')}: {r.get('reason') or 'not run'}"))
        elif acc is None:
            d.rejected.append((label(r), why))
        elif t is None:
            d.rejected.append((label(r), "not timed"))
        elif t > budget_ms:
            d.rejected.append((label(r), f"too slow: p90 {t:.2f} ms > budget {budget_ms:g} ms"))
        else:
            fits.append(r)
    fits.sort(key=lambda r: (-r["lesion_dice"], p90(r)))
    if fits:
        d.chosen = fits[0]
        for r in fits[1:]:
            why = (f"fits (p90 {p90(r):.2f} ms) but less accurate: lesion Dice {r['lesion_dice']:.4f} < "
                   f"{d.chosen['lesion_dice']:.4f}" if r["lesion_dice"] < d.chosen["lesion_dice"] else
                   f"fits, same lesion Dice {r['lesion_dice']:.4f}, but slower: p90 {p90(r):.2f} ms >= "
                   f"{p90(d.chosen):.2f} ms")
            d.rejected.append((label(r), why))
    return d
