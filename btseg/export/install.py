"""Writing into a model package: the parts of an export that touch the destination.

Used by :func:`btseg.export.run_export` while it holds :func:`btseg.package.package_lock`:
refusing the installed bundled assets, cleaning what killed runs left, removing artifacts
exported from other weights, putting one artifact in place with its previous version kept
for rollback, and turning ``OSError`` (disk full, ``ulimit -f``, permissions) into typed
errors.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from btseg import integrity
from btseg.errors import ArtifactError, BtsegError, ConfigError
from btseg.io import atomic_path
from btseg.package import MANIFEST, ArtifactRecord

log = logging.getLogger("btseg.export")
STAGING = ".export-staging-"


def refuse_installed_assets(root: Path) -> None:
    """The installed bundled package (``btseg.defaults.ASSETS``) is never written to."""
    from btseg import defaults

    dest, assets = root.resolve(), defaults.ASSETS.resolve()
    if dest == assets or assets in dest.parents:
        raise ConfigError(f"--out {root}: refusing to write into the installed bundled assets ({assets}); "
                          "export to a new directory, e.g. --out ./btseg-export")


def disk_step(root: Path, fn: Any) -> Any:
    """Run one write step; disk full, ``ulimit -f`` and permission errors become typed errors."""
    try:
        return fn()
    except OSError as e:
        raise ArtifactError(f"{e.filename or root}: cannot write ({e.strerror or e})") from e


def clean_stale(root: Path) -> list[str]:
    """Remove staging directories and temporary files left by killed runs (hold the lock)."""
    gone = []
    for p in root.iterdir():
        if p.name.startswith(STAGING) or (p.name.startswith(".") and ".tmp" in p.name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            gone.append(p.name)
    if gone:
        log.warning("removed leftovers of an interrupted export in %s: %s", root, ", ".join(sorted(gone)))
    return gone


def prune_foreign(dest: Any) -> list[str]:
    """Drop manifest records not bound to ``dest``'s weights, then their files (hold the lock).

    The manifest is read raw (a record exported from other weights may not match this
    ``model.json`` at all); the records that stay are validated when it is rewritten."""
    root = Path(dest.root)
    if not os.path.lexists(root / MANIFEST):
        return []
    raw = integrity.read_json(root, MANIFEST)
    arts = raw.get("artifacts") if isinstance(raw, dict) else None
    if not isinstance(arts, list):
        raise ArtifactError(f"{root / MANIFEST}: expected an object with an 'artifacts' list")
    mine = dest.config.weights_sha256
    keep = [a for a in arts if isinstance(a, dict) and a.get("weights_sha256") == mine]
    if len(keep) == len(arts):
        return []
    dest.write_manifest([ArtifactRecord.from_dict(a) for a in keep])  # first: never a record without files
    kept_files = {f["file"] for a in keep for f in a.get("files") or []}
    gone = []
    for a in arts:
        if isinstance(a, dict) and a not in keep:
            files = [f.get("file") for f in a.get("files") or [] if isinstance(f, dict)] + [a.get("file")]
            for rel in {f for f in files if isinstance(f, str)} - kept_files:
                remove_confined(root, rel)
            gone.append(str(a.get("id")))
    log.warning("removed artifact(s) %s from %s: exported from other weights than its model.safetensors",
                ", ".join(gone), root)
    return gone


def remove_confined(root: Path, rel: str) -> None:
    """Unlink a regular file (or symlink) lexically inside ``root``; empty parents go too."""
    try:
        integrity.need_relpath(rel, str(root), "file")
    except BtsegError:
        return
    path = root / rel
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return
        path.unlink()
        for parent in path.parents:
            if parent == root or root not in parent.parents:
                break
            parent.rmdir()
    except OSError:
        return


def put_in_place(built: Any, final: Path, staging: Path) -> Path | None:
    """Move/copy the staged artifact to ``final`` (modes 0755/0644); returns where the
    previous version was kept for rollback (inside ``staging``), or None."""
    old = None
    if os.path.lexists(final):
        old = staging / f"previous-{final.name}"
        if final.is_dir() and not final.is_symlink():
            os.replace(final, old)
        else:
            os.link(final, old, follow_symlinks=False)  # the old file stays in place until replaced
    if built.stage_root.is_dir():
        for p in [built.stage_root, *built.stage_root.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.replace(built.stage_root, final)
    else:
        with atomic_path(final) as tmp:
            shutil.copyfile(built.stage_root, tmp)
            os.chmod(tmp, 0o644)
    return old


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


