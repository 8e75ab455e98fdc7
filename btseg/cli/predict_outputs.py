"""Where ``btseg-predict`` may write: never over a file it did not write.

The policy, checked for every planned output path *before any work* and again right before
each write:

* ``--out`` must not be, or lie inside, a model package (a folder holding ``model.json``, or
  ``manifest.json`` with ``model.safetensors``; the ``--model`` folder included), the
  installed bundled assets, or a data set given as input: :class:`ConfigError`, exit 2,
  nothing run;
* an output path must not be an input or any file of an input folder or data set (images,
  masks, label files), even through a symbolic link;
* two outputs of one run must not share a path (``a.png`` and ``a.jpg`` both give
  ``a_mask.png``): exit 2 naming both inputs;
* an existing file is never replaced, except with ``--overwrite``, and then only when it
  is an earlier btseg-predict output: a ``<stem>.json`` record with ``"writer":
  "btseg-predict"`` lists it with the sha256 it had when written, and it still has it.

Example::

    >>> policy = OutputPolicy(Path("preds"), discover([Path("scans")]), package=Path("pkg"))  # doctest: +SKIP
    >>> policy.plan(overlay=True)          # ConfigError naming the first conflict, if any
    >>> policy.claim(Path("preds/a_mask.png"))   # DataError if this one write is not allowed
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Iterable

from btseg.errors import ConfigError, DataError
from btseg.imageio import DICOM_SUFFIXES, VIDEO_SUFFIXES
from btseg.io import sha256_file
from btseg.layout import PACKAGE_MARKERS
from btseg.cli.predict_inputs import InputItem, InputSet, read_record



def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _inside(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def output_names(name: str, overlay: bool, dicom: bool = False) -> list[str]:
    """The files one frame named ``name`` gets: mask, overlay (optional), DICOM SEG and SR
    (``--dicom``), JSON record (always last: written once the others are whole)."""
    return [f"{name}_mask.png", *([f"{name}_overlay.png"] if overlay else []),
            *([f"{name}_seg.dcm", f"{name}_sr.dcm"] if dicom else []), f"{name}.json"]


class OutputPolicy:
    """Decides, before and during a run, whether each output path may be written.

    Args:
        out: the ``--out`` folder.
        batch: the run's inputs (:func:`btseg.cli.predict_inputs.discover`).
        overwrite: allow replacing earlier btseg-predict outputs (never anything else).
        package: the model package in use.
    """

    def __init__(self, out: Path, batch: InputSet, *, overwrite: bool = False, package: Path | None = None) -> None:
        self.out = Path(out)
        self.batch = batch
        self.overwrite = overwrite
        self.forbidden = [_real(Path(package))] if package is not None else []
        self.written: set[Path] = set()
        self._records: dict[Path, dict[str, str]] = {}
        self._lock = threading.Lock()  # predict --streams writes from several threads

    # -- before any work ----------------------------------------------------------------
    def check_out(self) -> None:
        """ConfigError when ``--out`` is a file, or inside a package, the assets or an input data set."""
        if os.path.lexists(self.out) and not self.out.is_dir():
            raise ConfigError(f"--out {self.out}: exists and is not a folder")
        why = self._forbidden_dir(_real(self.out))
        if why:
            raise ConfigError(f"--out {self.out}: {why}; btseg-predict writes only outside packages and data sets")

    def _forbidden_dir(self, real: Path) -> str | None:
        from btseg import defaults

        for root in self.forbidden:
            if _inside(real, root):
                return f"is inside the model package {root}"
        if _inside(real, _real(defaults.ASSETS)):
            return f"is inside the installed bundled assets {defaults.ASSETS}"
        for root in self.batch.datasets:
            if _inside(real, root):
                return f"is inside the input data set {root}"
        for d in (real, *real.parents):
            hit = next((m for m in PACKAGE_MARKERS if all((d / n).is_file() for n in m)), None)
            if hit:
                return f"is inside a model package ({d / hit[0]} exists)"
        return None

    def plan(self, overlay: bool, dicom: bool = False) -> None:
        """Check every planned output path of every input; ConfigError naming the first conflict."""
        self.check_out()
        planned: dict[Path, InputItem] = {}
        for item in self.batch.items:
            folder = self.out / item.subdir
            for path in (folder / n for n in output_names(item.path.stem, overlay, dicom)):
                other = planned.setdefault(_real(path), item)
                if other is not item:
                    raise ConfigError(f"{item.path} and {other.path} would both write {path}; rename one "
                                      "(btseg-predict never overwrites its own outputs within a run)")
            for path in self._existing(folder, item, overlay, dicom):
                why = self.problem(path)
                if why:
                    raise ConfigError(f"{path}: {why} (input {item.path}); nothing was run")

    def _existing(self, folder: Path, item: InputItem, overlay: bool, dicom: bool = False) -> Iterable[Path]:
        stem = item.path.stem
        yield from (folder / n for n in output_names(stem, overlay, dicom))
        if item.path.suffix.lower() in DICOM_SUFFIXES + VIDEO_SUFFIXES and folder.is_dir():
            yield from (p for p in folder.glob(f"{_glob_escape(stem)}_f[0-9][0-9][0-9][0-9]*") if p.is_file())

    # -- at each write ------------------------------------------------------------------
    def claim(self, path: Path) -> Path:
        """Allow one write to ``path`` (DataError, naming it, when not allowed); returns it.

        Check and claim are one step under a lock, so two threads never both claim a path.
        """
        real = _real(path)
        with self._lock:
            if real in self.written:
                raise DataError(f"{path}: already written in this run; two inputs or frames share this output name")
            why = self.problem(path)
            if why:
                raise DataError(f"{path}: {why}")
            self.written.add(real)
        return path

    def problem(self, path: Path) -> str | None:
        """Why ``path`` must not be written, or None."""
        real = _real(path)
        if not _inside(real.parent if real != _real(self.out) else real, _real(self.out)):
            return f"resolves to {real}, outside --out {self.out}"
        where = self._forbidden_dir(real.parent)
        if where:
            return f"its folder {where}"
        if real in self.batch.protected:
            return "is an input or a file of an input folder/data set; btseg-predict never writes over inputs"
        if not os.path.lexists(path) or real in self.written:
            return None
        if not self.overwrite:
            return ("exists; btseg-predict never overwrites files "
                    "(--overwrite replaces earlier btseg-predict outputs only)")
        if not self._owned(path):
            return ("exists and is not an unchanged earlier btseg-predict output (no matching <stem>.json record); "
                    "not overwritten even with --overwrite")
        return None

    def _owned(self, path: Path) -> bool:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return False
        if path.suffix == ".json":
            return read_record(path) is not None
        rec = self._records_in(path.parent)
        return rec.get(path.name) is not None and rec[path.name] == sha256_file(path)

    def _records_in(self, folder: Path) -> dict[str, str]:
        key = _real(folder)
        if key not in self._records:
            files: dict[str, str] = {}
            for p in folder.glob("*.json"):
                rec = read_record(p)
                if rec:
                    files.update({str(k): str(v) for k, v in rec["files"].items()})
            self._records[key] = files
        return self._records[key]

    def complete(self, item: InputItem, overlay: bool, dicom: bool = False) -> bool:
        """``--resume``: an image input whose outputs are all present, its record valid and
        every file it lists unchanged (cines and videos: never, they are redone)."""
        if item.path.suffix.lower() in DICOM_SUFFIXES + VIDEO_SUFFIXES:
            return False
        paths = [self.out / item.subdir / n for n in output_names(item.path.stem, overlay, dicom)]
        rec = read_record(paths[-1])
        if rec is None:
            return False
        return all(os.path.isfile(p) and not os.path.islink(p) and rec["files"].get(p.name) == sha256_file(p)
                   for p in paths[:-1])

    def recorded(self, path: Path, sha256: str) -> None:
        """Note a file this run wrote (so a later check in this run sees it as owned)."""
        with self._lock:
            self._records.setdefault(_real(path.parent), {})[path.name] = sha256


def _glob_escape(s: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in s)
