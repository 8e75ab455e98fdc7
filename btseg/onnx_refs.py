"""External-data references of an ONNX model, read from its protobuf without loading tensors.

A cart's runtime has no ``onnx`` package, and the check must not read tensor data: this
walks the protobuf wire format (varints and length-delimited fields, payloads skipped as
slices) through every place a tensor can sit, i.e. graph initializers, sparse initializers,
node attributes (``t``, ``tensors``, ``sparse_tensor(s)``) and every nested graph (``If``,
``Loop``, ``Scan`` bodies, functions, training graphs), and returns each
``external_data`` ``location``.  Field numbers are those of ``onnx.proto`` (IR version 10).

Example::

    >>> external_locations(Path("model.onnx").read_bytes())     # doctest: +SKIP
    ['model.onnx.data']
"""

from __future__ import annotations

from typing import Iterator

from btseg.errors import IntegrityError

MAX_DEPTH = 64
# message -> {field number: message type of that field}; only paths that can hold a tensor
_SCHEMA: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, varint value or payload slice) of each field of one message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield num, value
            continue
        if wire == 2:
            size, i = _varint(buf, i)
            if i + size > n:
                raise ValueError(f"field {num} runs past the end")
            yield num, buf[i:i + size]
            i += size
            continue
        if wire not in (1, 5):
            raise ValueError(f"wire type {wire} (groups are not used by ONNX)")
        i += 8 if wire == 1 else 4
    if i != n:
        raise ValueError("truncated field")


def _tensor_location(buf: memoryview) -> str | None:
    for num, value in _fields(buf):
        if num == 13 and isinstance(value, memoryview):  # external_data: StringStringEntryProto
            entry = {k: bytes(v).decode("utf-8", "replace") for k, v in _fields(value) if isinstance(v, memoryview)}
            if entry.get(1) == "location":
                return entry.get(2, "")
    return None


def _walk(buf: memoryview, kind: str, depth: int, out: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"graphs nested deeper than {MAX_DEPTH}")
    if kind == "tensor":
        loc = _tensor_location(buf)
        if loc is not None and loc not in out:
            out.append(loc)
        return
    for num, value in _fields(buf):
        sub = _SCHEMA[kind].get(num)
        if sub is not None and isinstance(value, memoryview):
            _walk(value, sub, depth + 1, out)


def external_locations(data: bytes, name: str = "model.onnx") -> list[str]:
    """Every ``external_data`` location named in the ONNX model ``data`` (in first-seen
    order); IntegrityError naming ``name`` when it is not a parsable ONNX protobuf."""
    out: list[str] = []
    if b"location" not in data:  # every reference carries the key "location": none at all (fast path)
        return out
    try:
        _walk(memoryview(data), "model", 0, out)
    except ValueError as e:
        raise IntegrityError(f"{name}: not a readable ONNX model ({e})") from e
    return out
