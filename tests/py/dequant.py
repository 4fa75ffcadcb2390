#!/usr/bin/env python3
"""Dequantise every tensor of a GGUF file with gguf-py (llama.cpp's numpy port of ggml's
`dequantize_row_*`, `pip install gguf`), so that the Rust tests can check glimpse's CPU
dequantisers against an implementation we did not write.

Usage: python3 tests/py/dequant.py FILE OUTDIR

Writes OUTDIR/<tensor name>.f32 for each tensor: its elements in file order (ggml order, dims[0]
contiguous) as raw little-endian f32. Prints one line per tensor to stderr.
"""

import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    for tensor in GGUFReader(path).tensors:
        values = dequantize(tensor.data, tensor.tensor_type)
        values = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
        values.tofile(os.path.join(outdir, f"{tensor.name}.f32"))
        print(f"{tensor.name}: {tensor.tensor_type.name} -> {values.size} values", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
