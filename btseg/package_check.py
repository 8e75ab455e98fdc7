"""Check a whole model package (what ``btseg-check`` runs, and the bench before any row).

:func:`check_package` validates ``model.json`` and ``manifest.json``, hashes the weights
against ``model.json``, and checks every artifact's files and binding to the weights with
the very functions the runtime uses (:meth:`ModelPackage.verify_artifact`), so the check a
cart runs at start-up and the check the runtime runs at load cannot disagree.

:func:`migrate` brings a format-1 package (before the integrity chain) to format 2. It
*trusts* the weights file as it is now (trust on first use) and refuses if any artifact
file no longer matches the sha256 the old manifest recorded.

Example::

    >>> report = check_package("btseg/assets/default")     # doctest: +SKIP
    >>> report.ok, [r.artifact for r in report.rows]       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from btseg import integrity
from btseg.errors import ArtifactError, BtsegError, IntegrityError
from btseg.schema import FORMAT_VERSION, check_model_json


@dataclass
class CheckRow:
    """One line of the report: the weights, a JSON document or one artifact."""

    artifact: str
    files: int = 0
    size_bytes: int = 0
    hash_ok: bool | None = None
    bound: bool | None = None
    verification: str = "-"
    status: str = "ok"  # ok | refused | unusable (honestly marked failed at export)
    reason: str = ""


@dataclass
class CheckReport:
    """All rows; ``ok`` is False when anything was refused (CLI exit 2)."""

    package: str
    rows: list[CheckRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status != "refused" for r in self.rows)

    @property
    def errors(self) -> list[str]:
        return [r.reason for r in self.rows if r.status == "refused"]  # each names its file


def check_package(root: str | Path) -> CheckReport:
    """Check every schema, hash and binding of the package at ``root``; never raises for
    a bad package (every problem becomes a refused row)."""
    from btseg.package import CONFIG, MANIFEST, WEIGHTS, load_package

    report = CheckReport(str(root))
    try:
        pkg = load_package(root, check_architecture=False)
    except BtsegError as e:
        report.rows.append(CheckRow(CONFIG, status="refused", reason=str(e)))
        return report
    wrow = CheckRow(WEIGHTS, files=1, size_bytes=pkg.config.weights_size, verification="reference")
    try:
        pkg.weights_bytes()
        wrow.hash_ok = wrow.bound = True
    except BtsegError as e:
        wrow.hash_ok, wrow.status, wrow.reason = False, "refused", str(e)
    report.rows.append(wrow)
    try:
        records = pkg.artifacts()
    except BtsegError as e:
        report.rows.append(CheckRow(MANIFEST, status="refused", reason=str(e)))
        return report
    for rec in records:
        report.rows.append(_artifact_row(pkg, rec))
    stale = sorted(p.name for p in Path(root).glob(".export-staging-*"))
    if stale:
        report.warnings.append(f"leftover export staging (removed by the next export): {', '.join(stale)}")
    return report


def _artifact_row(pkg: Any, rec: Any) -> CheckRow:
    row = CheckRow(f"{rec.target}/{rec.precision}", files=len(rec.files), size_bytes=rec.size_bytes,
                   verification=str((rec.verification or {}).get("status", "unverified")))
    row.bound = rec.weights_sha256 == pkg.config.weights_sha256
    try:
        pkg.verify_artifact(rec)
        row.hash_ok = True
    except IntegrityError as e:
        row.hash_ok = False if row.bound else None
        row.status, row.reason = "refused", str(e)
        return row
    if rec.status != "ok" or row.verification == "failed":
        row.status, row.reason = "unusable", f"marked {rec.status!r} / verification {row.verification} at export"
    return row


def migrate(root: str | Path) -> list[str]:
    """Bring a format-1 package to format 2 in place (see the module docstring).

    Returns what was done, one line per step.  Raises IntegrityError if an artifact file
    differs from the sha256 the old manifest recorded (nothing is written then)."""
    from btseg.io import write_json
    from btseg.package import CONFIG, MANIFEST, WEIGHTS, ArtifactRecord, ModelConfig, ModelPackage, package_lock

    root = Path(root)
    done = []
    with package_lock(root):
        raw = integrity.read_json(root, CONFIG)
        if not isinstance(raw, dict) or raw.get("format_version") not in (1, FORMAT_VERSION):
            raise ArtifactError(f"{root / CONFIG}: not a format 1 or {FORMAT_VERSION} btseg model.json")
        sha, size = integrity.hash_file(root, WEIGHTS)
        if raw.get("format_version") == FORMAT_VERSION and raw.get("weights_sha256") != sha:
            raise IntegrityError(f"{root / WEIGHTS}: does not match model.json's weights_sha256; refusing to migrate")
        raw.update(weights_sha256=sha, weights_size=size, format_version=FORMAT_VERSION)
        check_model_json(raw, str(root / CONFIG))
        pkg = ModelPackage(root, ModelConfig.from_dict(raw))
        records = []
        man = integrity.read_json(root, MANIFEST) if (root / MANIFEST).exists() else {"artifacts": []}
        for a in man.get("artifacts", []):
            extra = dict(a.get("extra") or {})
            files = extra.pop("files", None) or a.get("files") or [
                {"file": a["file"], "sha256": a["sha256"], "size_bytes": a["size_bytes"]}]
            for f in files:
                integrity.check_file(root, f["file"], f["sha256"], f["size_bytes"], f"{a.get('id')} file")
            records.append(ArtifactRecord.from_dict({**a, "extra": extra, "files": files, "weights_sha256": sha}))
            done.append(f"{a.get('id')}: {len(files)} file(s) verified, bound to weights {sha[:12]}...")
        if records:
            pkg.write_manifest(records)
        write_json(root / CONFIG, raw)
        done.insert(0, f"{WEIGHTS}: sha256 {sha[:12]}... ({size} bytes) recorded in {CONFIG} (trusted as is)")
    return done
