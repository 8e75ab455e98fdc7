"""Bad items of a data set: collected, never the first one only, then refused or skipped.

Every loader records each problem it meets (:class:`Problems`) and decides once, at the
end (:meth:`Problems.resolve`): without ``skip_bad`` one :class:`~btseg.errors.DataError`
whose first line counts the bad items and whose next lines name each (``file: reason``);
with it one :class:`SkippedFilesWarning` naming each skipped item once.
:func:`btseg.data.layouts.scan` returns them without raising (``btseg-data inspect``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from btseg.errors import DataError


class SkippedFilesWarning(UserWarning):
    """Issued once per :func:`open_dataset` call that skipped bad files (``skip_bad=True``)."""


class Problems:
    """Collects indexing problems so that one run reports all of them, not the first only."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: Path | str, reason: str) -> None:
        self.items.append((str(path), reason))

    def __len__(self) -> int:
        return len(self.items)

    def resolve(self, skip_bad: bool, what: str) -> list[tuple[str, str]]:
        """Raise one DataError naming every bad item (skip_bad False), or issue one
        :class:`SkippedFilesWarning` naming every skipped item once; returns the items."""
        if not self.items:
            return []
        if not skip_bad:
            raise DataError(format_problems(what, self.items, "refusing the data set (--skip-bad / "
                                                              "skip_bad=True skips them)"))
        warnings.warn(format_problems(what, self.items, "skipped"), SkippedFilesWarning, stacklevel=3)
        return list(self.items)


class NoUsableSamplesError(DataError):
    """No sample survived: every item was bad (``problems`` names each) or there were none."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


def format_problems(what: str, items: Sequence[tuple[str, str]], verdict: str) -> str:
    """A one-line summary, then one ``  file: reason`` line per bad item."""
    return "\n".join([f"{what}: {len(items)} bad item(s), {verdict}:", *(f"  {p}: {r}" for p, r in items)])


def blame(image: Path, masks: Sequence[Path], message: str) -> tuple[str, str]:
    """(the file an error names, the reason): a mask's problem names the mask, else the image."""
    for p in (image, *masks):
        if message.startswith(f"{p}: "):
            return str(p), message[len(f"{p}: "):]
    return str(image), message
