"""Validation of ``model.json`` and ``manifest.json``: types, ranges, required fields.

Every document a package consists of is checked on load, before anything is built or
allocated (a hostile ``widths`` of 10^6 is refused here, not by the allocator), and every
problem is one :class:`~btseg.errors.SchemaError` naming the file, the field and what was
expected::

    model.json: threshold = 1.5: expected a finite number in (0, 1)

The checks are plain functions (no schema library): the documents are small and the
messages matter more than generality.  :data:`FORMAT_VERSION` 2 is the first version
with the integrity chain (``weights_sha256`` in ``model.json``; ``weights_sha256`` and
``files`` in every artifact record); version 1 packages are refused with a pointer to
``btseg-check --migrate``.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import Any, Mapping

from btseg.contract import (MAX_LEVELS, MAX_PARAMS_PROXY, MAX_SIDE, MAX_WIDTH, MIN_SIDE, POSTPROCESS_STEPS, SCALES,
                            THRESHOLD_RANGE, params_proxy, side_fits, size_divisor)
from btseg import records
from btseg.errors import SchemaError
from btseg.records import FORMAT_VERSION  # noqa: F401  (re-exported: schema.FORMAT_VERSION)
from btseg.preprocess import INTERPOLATIONS, NORMALIZATIONS
from btseg.specs import BACKEND_SPECS, EXPORT_TARGETS, PRECISIONS

STATUSES = ("ok", "failed")
MAX_ARTIFACTS = 64
MAX_FILES = 64
# the presence decision (``postprocess.presence``, :mod:`btseg.runtime.presence`): its one home
PRESENCE_SCORES = ("peak", "mean", "mass", "area")  # per-component statistic the threshold applies to
PRESENCE_MAX_MIN_AREA = 0.5  # min_area_frac: fraction of the image's pixels, in [0, 0.5]
MAX_SKIPPED = 100_000  # bad items a model.json may list as left out of training
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MIGRATE = "re-export it, or run `btseg-check --migrate PACKAGE` on a package you trust"


def _fail(doc: str, field: str, value: Any, expected: str) -> SchemaError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return SchemaError(f"{doc}: {field} = {shown}: expected {expected}")


def _get(d: Mapping[str, Any], key: str, doc: str, field: str) -> Any:
    if key not in d:
        raise SchemaError(f"{doc}: {field} is missing")
    return d[key]


EXTENSION_PREFIX = "x-"  # forward-compatible keys: kept, never interpreted, never refused


def known_keys(d: Mapping[str, Any], allowed: set[str] | frozenset[str], doc: str, field: str) -> None:
    """SchemaError naming the first key of ``d`` that is neither in ``allowed`` nor starts
    with :data:`EXTENSION_PREFIX`: a misspelt or newer-format key is never silently ignored."""
    for key in d:
        if key not in allowed and not (isinstance(key, str) and key.startswith(EXTENSION_PREFIX)):
            where = f"{field}.{key}" if field else str(key)
            raise SchemaError(f"{doc}: {where}: unknown key; expected one of {', '.join(sorted(allowed))} "
                              f"(a key written by a newer btseg? extensions go under '{EXTENSION_PREFIX}...' keys)")


# the keys the writers' dataclasses have (btseg.records: one definition, below both this
# module and btseg.package, so the schema cannot drift from the writer)
MODEL_KEYS = frozenset(records.ModelConfig.__dataclass_fields__)
ARTIFACT_KEYS = frozenset(records.ArtifactRecord.__dataclass_fields__)


def need_dict(v: Any, doc: str, field: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _fail(doc, field, v if not isinstance(v, (list, str)) else type(v).__name__, "a JSON object")
    return v


def need_int(v: Any, doc: str, field: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _fail(doc, field, v, f"an integer in [{lo}, {hi}]")
    return v


def need_number(v: Any, doc: str, field: str, lo: float, hi: float, open_lo: bool = False,
                open_hi: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
        rng = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
        raise _fail(doc, field, v, f"a finite number in {rng}")
    return float(v)


def need_str(v: Any, doc: str, field: str, choices: tuple[str, ...] | None = None, max_len: int = 256) -> str:
    if not isinstance(v, str) or (choices is not None and v not in choices) or len(v) > max_len:
        raise _fail(doc, field, v, f"one of {', '.join(choices)}" if choices else f"a string (<= {max_len} chars)")
    return v


def need_bool(v: Any, doc: str, field: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(doc, field, v, "true or false")
    return v


def need_sha(v: Any, doc: str, field: str) -> str:
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        raise _fail(doc, field, v, "a sha256 (64 lower-case hex digits)")
    return v


def need_relpath(v: Any, doc: str, field: str) -> str:
    """A path inside the package: relative, POSIX, no ``..``, no NUL/backslash, not empty."""
    ok = isinstance(v, str) and 0 < len(v) <= 1024 and "\\" not in v and "\x00" not in v
    if ok:
        p = PurePosixPath(v)
        ok = not p.is_absolute() and ".." not in p.parts and p.parts not in ((), (".",)) and ":" not in p.parts[0]
    if not ok:
        raise _fail(doc, field, v, "a relative path inside the package (no '..', not absolute)")
    return v


def check_version(d: Mapping[str, Any], doc: str) -> None:
    v = _get(d, "format_version", doc, "format_version")
    if v == 1:
        raise SchemaError(f"{doc}: format_version 1 predates the integrity chain (no weights sha256); {_MIGRATE}")
    if isinstance(v, bool) or v != FORMAT_VERSION:
        raise _fail(doc, "format_version", v, str(FORMAT_VERSION))


def model_divisor(architecture: Any, kwargs: Mapping[str, Any]) -> int:
    """The model's total downsampling factor (:func:`btseg.contract.size_divisor`; 1 without widths)."""
    widths = kwargs.get("widths")
    if not widths and kwargs.get("scale") in SCALES.get(str(architecture), {}):
        widths = SCALES[str(architecture)][kwargs["scale"]]
    return size_divisor(str(architecture), widths) if isinstance(widths, list) and widths else 1


def check_kwargs(kw: Any, doc: str) -> dict[str, Any]:
    """Architecture arguments, bounded before any model is constructed."""
    kw = need_dict(kw, doc, "kwargs")
    if "widths" in kw:
        w = kw["widths"]
        if not isinstance(w, list) or not 1 <= len(w) <= MAX_LEVELS:
            raise _fail(doc, "kwargs.widths", w, f"a list of 1..{MAX_LEVELS} integers")
        for i, x in enumerate(w):
            need_int(x, doc, f"kwargs.widths[{i}]", 1, MAX_WIDTH)
        if params_proxy(w) > MAX_PARAMS_PROXY:
            raise _fail(doc, "kwargs.widths", w, "a model of at most about 400 M parameters")
    for key, hi in (("in_channels", 4), ("out_channels", 16), ("expansion", 64), ("up_kernel", 7)):
        if key in kw:
            need_int(kw[key], doc, f"kwargs.{key}", 1, hi)
    return kw


def check_preprocess(p: Any, doc: str, field: str = "preprocess", divisor: int = 1) -> dict[str, Any]:
    """A :class:`~btseg.preprocess.PreprocessSpec` dict: every field typed and in range."""
    p = need_dict(p, doc, field)
    size = _get(p, "size", doc, f"{field}.size")
    if not isinstance(size, list) or len(size) != 2:
        raise _fail(doc, f"{field}.size", size, "[height, width]")
    for i, s in enumerate(size):
        need_int(s, doc, f"{field}.size[{i}]", MIN_SIDE, MAX_SIDE)
        if not side_fits(s, divisor):
            raise _fail(doc, f"{field}.size[{i}]", s, f"a multiple of {divisor} (the model's downsampling factor)")
    need_str(_get(p, "interpolation", doc, f"{field}.interpolation"), doc, f"{field}.interpolation", INTERPOLATIONS)
    need_bool(_get(p, "grayscale", doc, f"{field}.grayscale"), doc, f"{field}.grayscale")
    need_str(_get(p, "normalize", doc, f"{field}.normalize"), doc, f"{field}.normalize", NORMALIZATIONS)
    need_number(_get(p, "scale", doc, f"{field}.scale"), doc, f"{field}.scale", 0, 1e6, open_lo=True)
    need_number(_get(p, "mean", doc, f"{field}.mean"), doc, f"{field}.mean", 0, 1)
    need_number(_get(p, "std", doc, f"{field}.std"), doc, f"{field}.std", 0, 1, open_lo=True)
    need_str(p.get("layout", "NCHW"), doc, f"{field}.layout", ("NCHW",))
    need_str(p.get("dtype", "float32"), doc, f"{field}.dtype", ("float32",))
    from btseg.preprocess import PreprocessSpec

    known_keys(p, frozenset(PreprocessSpec.__dataclass_fields__), doc, field)
    return p


def check_model_json(d: Any, doc: str) -> dict[str, Any]:
    """Validate a parsed ``model.json``; returns it unchanged or raises SchemaError."""
    d = need_dict(d, doc, "(document)")
    check_version(d, doc)
    known_keys(d, MODEL_KEYS | {"input_size"}, doc, "")
    arch = need_str(_get(d, "architecture", doc, "architecture"), doc, "architecture", max_len=64)
    kw = check_kwargs(_get(d, "kwargs", doc, "kwargs"), doc)
    check_preprocess(_get(d, "preprocess", doc, "preprocess"), doc, divisor=model_divisor(arch, kw))
    need_number(_get(d, "threshold", doc, "threshold"), doc, "threshold", *THRESHOLD_RANGE, open_lo=True, open_hi=True)
    need_sha(_get(d, "weights_sha256", doc, "weights_sha256"), doc, "weights_sha256")
    need_int(_get(d, "weights_size", doc, "weights_size"), doc, "weights_size", 1, 1 << 40)
    out = need_dict(d.get("output", {}), doc, "output")
    known_keys(out, {"name", "activation", "channels"}, doc, "output")
    if "channels" in out:
        need_int(out["channels"], doc, "output.channels", 1, 1)
    if "activation" in out:
        need_str(out["activation"], doc, "output.activation", ("sigmoid",))
    post = need_dict(d.get("postprocess", {}), doc, "postprocess")
    known_keys(post, {*POSTPROCESS_STEPS, "presence"}, doc, "postprocess")
    for key in POSTPROCESS_STEPS:
        if key in post:
            need_bool(post[key], doc, f"postprocess.{key}")
    if post.get("presence") is not None:
        check_presence(post["presence"], doc)
    for key in ("role", "preset", "notes"):
        if key in d:
            need_str(d[key], doc, key, max_len=100_000)
    for key in ("data", "metrics", "training"):
        if key in d:
            need_dict(d[key], doc, key)
    if "skipped" in d.get("data", {}):
        check_skipped(d["data"]["skipped"], doc, "data.skipped")
    return d


def check_presence(p: Any, doc: str, field: str = "postprocess.presence") -> dict[str, Any]:
    """The "no lesion" decision: ``score`` (one of :data:`PRESENCE_SCORES`), ``min_area_frac``
    in [0, :data:`PRESENCE_MAX_MIN_AREA`], ``threshold`` in (0, 1]; optional
    ``target_sensitivity`` in (0, 1] and ``calibration`` (an object, informational)."""
    p = need_dict(p, doc, field)
    need_str(_get(p, "score", doc, f"{field}.score"), doc, f"{field}.score", PRESENCE_SCORES)
    need_number(_get(p, "min_area_frac", doc, f"{field}.min_area_frac"), doc, f"{field}.min_area_frac",
                0, PRESENCE_MAX_MIN_AREA)
    need_number(_get(p, "threshold", doc, f"{field}.threshold"), doc, f"{field}.threshold", 0, 1, open_lo=True)
    if p.get("target_sensitivity") is not None:
        need_number(p["target_sensitivity"], doc, f"{field}.target_sensitivity", 0, 1, open_lo=True)
    if "calibration" in p:
        need_dict(p["calibration"], doc, f"{field}.calibration")
    known_keys(p, {"score", "min_area_frac", "threshold", "target_sensitivity", "calibration"}, doc, field)
    return p
def check_skipped(v: Any, doc: str, field: str) -> None:
    """The items a model was trained without (``--skip-bad``): a list of ``{file, reason}``
    (packages made before it was recorded hold a count, still accepted)."""
    if isinstance(v, int) and not isinstance(v, bool):
        need_int(v, doc, field, 0, MAX_SKIPPED)
        return
    if not isinstance(v, list) or len(v) > MAX_SKIPPED:
        raise _fail(doc, field, v if not isinstance(v, list) else len(v),
                    f"a list of at most {MAX_SKIPPED} {{file, reason}} objects")
    for i, item in enumerate(v):
        item = need_dict(item, doc, f"{field}[{i}]")
        need_str(_get(item, "file", doc, f"{field}[{i}].file"), doc, f"{field}[{i}].file", max_len=4096)
        need_str(_get(item, "reason", doc, f"{field}[{i}].reason"), doc, f"{field}[{i}].reason", max_len=4096)


def check_files(files: Any, doc: str, field: str) -> list[dict[str, Any]]:
    if not isinstance(files, list) or not 1 <= len(files) <= MAX_FILES:
        raise _fail(doc, field, files, f"a list of 1..{MAX_FILES} {{file, sha256, size_bytes}} objects")
    seen = set()
    for i, f in enumerate(files):
        f = need_dict(f, doc, f"{field}[{i}]")
        name = need_relpath(_get(f, "file", doc, f"{field}[{i}].file"), doc, f"{field}[{i}].file")
        need_sha(_get(f, "sha256", doc, f"{field}[{i}].sha256"), doc, f"{field}[{i}].sha256")
        need_int(_get(f, "size_bytes", doc, f"{field}[{i}].size_bytes"), doc, f"{field}[{i}].size_bytes", 0, 1 << 40)
        known_keys(f, {"file", "sha256", "size_bytes"}, doc, f"{field}[{i}]")
        if name in seen:
            raise _fail(doc, f"{field}[{i}].file", name, "each file listed once")
        seen.add(name)
    return files


def check_artifact(a: Any, doc: str, i: int, model: Mapping[str, Any]) -> dict[str, Any]:
    """One artifact record, cross-checked against the (validated) ``model.json``."""
    f = f"artifacts[{i}]"
    a = need_dict(a, doc, f)
    known_keys(a, ARTIFACT_KEYS, doc, f)
    t = need_str(_get(a, "target", doc, f"{f}.target"), doc, f"{f}.target", tuple(sorted(EXPORT_TARGETS)))
    p = need_str(_get(a, "precision", doc, f"{f}.precision"), doc, f"{f}.precision", PRECISIONS)
    if _get(a, "id", doc, f"{f}.id") != f"{t}-{p}":
        raise _fail(doc, f"{f}.id", a["id"], f"'{t}-{p}' (target-precision)")
    main = need_relpath(_get(a, "file", doc, f"{f}.file"), doc, f"{f}.file")
    sha = need_sha(_get(a, "sha256", doc, f"{f}.sha256"), doc, f"{f}.sha256")
    total = need_int(_get(a, "size_bytes", doc, f"{f}.size_bytes"), doc, f"{f}.size_bytes", 0, 1 << 40)
    need_str(_get(a, "status", doc, f"{f}.status"), doc, f"{f}.status", STATUSES)
    need_sha(_get(a, "weights_sha256", doc, f"{f}.weights_sha256"), doc, f"{f}.weights_sha256")
    files = check_files(_get(a, "files", doc, f"{f}.files"), doc, f"{f}.files")
    if not any(x["file"] == main and x["sha256"] == sha for x in files):
        raise _fail(doc, f"{f}.files", [x["file"] for x in files], f"to list {main!r} with sha256 {sha[:12]}...")
    if sum(x["size_bytes"] for x in files) != total:
        raise _fail(doc, f"{f}.size_bytes", total, "the sum of its files' size_bytes")
    pre = check_preprocess(_get(a, "preprocess", doc, f"{f}.preprocess"), doc, f"{f}.preprocess",
                           model_divisor(model["architecture"], model["kwargs"]))
    for key, want in model["preprocess"].items():
        if key != "size" and pre.get(key, want) != want:
            raise _fail(doc, f"{f}.preprocess.{key}", pre.get(key), f"{want!r} as in model.json")
    for key in ("inputs", "outputs"):
        if not isinstance(a.get(key, []), list):
            raise _fail(doc, f"{f}.{key}", a[key], "a list")
    shape = (a.get("inputs") or [{}])[0].get("shape") if isinstance((a.get("inputs") or [{}])[0], dict) else None
    if isinstance(shape, list) and len(shape) == 4 and all(isinstance(s, int) for s in shape[2:]):
        if shape[2:] != pre["size"]:
            raise _fail(doc, f"{f}.inputs[0].shape", shape, f"H, W = preprocess.size {pre['size']}")
    if a.get("opset") is not None:
        need_int(a["opset"], doc, f"{f}.opset", 1, 1000)
    for key in ("verification", "extra", "toolchain"):
        if key in a:
            need_dict(a[key], doc, f"{f}.{key}")
    check_extra(a.get("extra") or {}, doc, f"{f}.extra")
    return a


VERIFY_STATUSES = ("passed", "failed", "skipped")


def check_extra(e: Mapping[str, Any], doc: str, field: str) -> None:
    """The keys of an artifact's ``extra`` that other layers read (through ArtifactRecord's
    typed accessors): ``also_verified`` (backend -> {status, failures}) and what a TensorRT
    engine is tied to (``tensorrt``, ``gpu``, ``compute_capability``: strings)."""
    also = e.get("also_verified", {})
    need_dict(also, doc, f"{field}.also_verified")
    for name, r in also.items():
        where = f"{field}.also_verified.{name}"
        need_str(name, doc, where, tuple(BACKEND_SPECS))
        r = need_dict(r, doc, where)
        need_str(_get(r, "status", doc, f"{where}.status"), doc, f"{where}.status", VERIFY_STATUSES)
        failures = r.get("failures", [])
        if not isinstance(failures, list) or not all(isinstance(x, str) for x in failures):
            raise _fail(doc, f"{where}.failures", failures, "a list of strings")
    for key in ("tensorrt", "gpu", "compute_capability"):
        if e.get(key) is not None:
            need_str(e[key], doc, f"{field}.{key}")


def check_manifest(d: Any, doc: str, model: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a parsed ``manifest.json`` against the validated ``model.json`` dict."""
    d = need_dict(d, doc, "(document)")
    check_version(d, doc)
    known_keys(d, {"format_version", "model", "role", "preprocess", "threshold", "artifacts"}, doc, "")
    arts = _get(d, "artifacts", doc, "artifacts")
    if not isinstance(arts, list) or len(arts) > MAX_ARTIFACTS:
        raise _fail(doc, "artifacts", arts if not isinstance(arts, list) else len(arts),
                    f"a list of at most {MAX_ARTIFACTS} artifact records")
    ids = set()
    for i, a in enumerate(arts):
        check_artifact(a, doc, i, model)
        if a["id"] in ids:
            raise _fail(doc, f"artifacts[{i}].id", a["id"], "each id once")
        ids.add(a["id"])
    for key in ("threshold", "preprocess"):  # informational copies: must not disagree
        if key in d and d[key] != model[key]:
            raise _fail(doc, key, d[key], f"{model[key]!r} as in model.json")
    return d
