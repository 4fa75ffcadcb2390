#!/usr/bin/env python3
"""Dump GGUF files as JSON with gguf-py (llama.cpp's Python reader, `pip install gguf`), so that the
Rust tests can check glimpse's writer and reader against an implementation we did not write.

Usage: python3 tests/py/gguf_dump.py FILE [FILE ...]

Prints one JSON object per file, one per line:
  {"file": ..., "version": 3, "alignment": 32, "data_offset": 160,
   "metadata": [{"key": "general.architecture", "value": V}, ...],          # file order
   "tensors": [{"name": "t", "dims": [4, 2], "type": 0, "offset": 0,        # dims in ggml order,
                "n_bytes": 32, "data_hex": "..."}, ...]}                     # offset data-relative
where a value V is
  {"t": "u32", "v": 7}   for integers, {"t": "bool", "v": true}, {"t": "string", "v": "..."},
  {"t": "f32", "bits": 1078530011} for floats (the raw IEEE bits, so NaN payloads and -0.0 compare),
  {"t": "array", "elem": "i32", "v": [V, ...]} for arrays (nested arrays are rebuilt from the raw
  parts, since gguf-py's ReaderField.contents() flattens them).
"""

import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType

TYPE_NAMES = {
    GGUFValueType.UINT8: "u8",
    GGUFValueType.INT8: "i8",
    GGUFValueType.UINT16: "u16",
    GGUFValueType.INT16: "i16",
    GGUFValueType.UINT32: "u32",
    GGUFValueType.INT32: "i32",
    GGUFValueType.FLOAT32: "f32",
    GGUFValueType.BOOL: "bool",
    GGUFValueType.STRING: "string",
    GGUFValueType.ARRAY: "array",
    GGUFValueType.UINT64: "u64",
    GGUFValueType.INT64: "i64",
    GGUFValueType.FLOAT64: "f64",
}


def decode(parts, i, vtype):
    """Decodes the value of type `vtype` whose first raw part is parts[i]; returns (V, next i)."""
    vtype = GGUFValueType(int(vtype))
    name = TYPE_NAMES[vtype]
    if vtype == GGUFValueType.STRING:
        # parts[i] is the u64 length, parts[i + 1] the bytes.
        return {"t": name, "v": bytes(parts[i + 1]).decode("utf-8")}, i + 2
    if vtype == GGUFValueType.ARRAY:
        elem = GGUFValueType(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            item, i = decode(parts, i, elem)
            items.append(item)
        return {"t": name, "elem": TYPE_NAMES[elem], "v": items}, i
    part = parts[i]
    if vtype == GGUFValueType.FLOAT32:
        return {"t": name, "bits": int(part.view(np.uint32)[0])}, i + 1
    if vtype == GGUFValueType.FLOAT64:
        return {"t": name, "bits": int(part.view(np.uint64)[0])}, i + 1
    if vtype == GGUFValueType.BOOL:
        return {"t": name, "v": bool(part[0])}, i + 1
    return {"t": name, "v": int(part[0])}, i + 1


def dump(path):
    reader = GGUFReader(path)
    fields = list(reader.fields.values())
    # The first three fields are gguf-py's pseudo-fields GGUF.version, GGUF.tensor_count, GGUF.kv_count.
    version = int(fields[0].parts[0][0])
    metadata = []
    for field in fields[3:]:
        # parts: key length, key bytes, value type, then the value's parts.
        value, end = decode(field.parts, 3, field.parts[2][0])
        assert end == len(field.parts), f"{field.name}: {len(field.parts) - end} parts left over"
        metadata.append({"key": field.name, "value": value})
    tensors = []
    for t in reader.tensors:
        tensors.append(
            {
                "name": t.name,
                "dims": [int(d) for d in t.shape],
                "type": int(t.tensor_type),
                "offset": int(t.data_offset) - int(reader.data_offset),
                "n_bytes": int(t.n_bytes),
                "data_hex": t.data.tobytes().hex(),
            }
        )
    return {
        "file": str(path),
        "version": version,
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": metadata,
        "tensors": tensors,
    }


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    for path in sys.argv[1:]:
        print(json.dumps(dump(path), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
