#!/usr/bin/env python3
"""Writes the dequantization fixtures of quant_ggml's tests (tests/fixtures/<TYPE>.bin + <TYPE>.f32).

<TYPE>.bin holds raw ggml blocks, <TYPE>.f32 the little-endian float32 values gguf.quants.dequantize (the gguf
package from PyPI, gguf-py) gives for them; the C++ test requires its own dequantization to match bit for bit.

Blocks come from two sources:
  * gguf.quants.quantize of random floats, for the types gguf-py can quantize (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4);
  * random bytes for every block type, with the fp16 scale fields (d, m, dmin) overwritten by finite, sane values,
    so every bit pattern of the quant fields is exercised.
F32/F16/BF16 use random bit patterns (no NaNs for F16: F16C hardware may quiet a signaling NaN) plus specials.

If the real model models/SmolLM2-135M-Instruct.Q4_1.gguf is present, it also writes smollm2_rows.txt (lines
"<tensor> <row> <cols>") and smollm2_rows.f32 (those rows, dequantized by gguf-py, in the same order): the C++ test
reads them through the core's GGUF reader and checks get_rows on the real file.

Usage: python3 make_fixtures.py [out_dir]   (default: fixtures/ next to this script). Deterministic (fixed seed).
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

rng = np.random.default_rng(20240611)

# type name -> (ggml type, blocks quantized from floats, blocks of random bytes, byte offsets of fp16 scale fields)
BLOCK_TYPES = {
    "Q4_0": (T.Q4_0, 16, 16, [0]),
    "Q4_1": (T.Q4_1, 16, 16, [0, 2]),
    "Q5_0": (T.Q5_0, 16, 16, [0]),
    "Q5_1": (T.Q5_1, 16, 16, [0, 2]),
    "Q8_0": (T.Q8_0, 16, 16, [0]),
    "MXFP4": (T.MXFP4, 16, 16, []),
    "IQ4_NL": (T.IQ4_NL, 0, 32, [0]),
    "Q2_K": (T.Q2_K, 0, 8, [80, 82]),
    "Q3_K": (T.Q3_K, 0, 8, [108]),
    "Q4_K": (T.Q4_K, 0, 8, [0, 2]),
    "Q5_K": (T.Q5_K, 0, 8, [0, 2]),
    "Q6_K": (T.Q6_K, 0, 8, [208]),
    "IQ4_XS": (T.IQ4_XS, 0, 8, [0]),
}


def sane_fp16(n):
    """Finite fp16 values of either sign, magnitudes spread over 1e-4 .. 10."""
    mag = 10.0 ** rng.uniform(-4, 1, n)
    sign = rng.choice([-1.0, 1.0], n)
    return (sign * mag).astype(np.float16)


def random_blocks(qtype, n_blocks, scale_offsets):
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for off in scale_offsets:
        raw[:, off:off + 2] = sane_fp16(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    if qtype == T.MXFP4:  # E8M0 exponent byte: keep d = 2^(e-128) in a sane range
        raw[:, 0] = rng.integers(110, 140, n_blocks, dtype=np.uint8)
    return raw


def quantized_blocks(qtype, n_blocks):
    block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
    x = (rng.standard_normal((n_blocks, block_size)) * 10.0 ** rng.uniform(-3, 1, (n_blocks, 1))).astype(np.float32)
    x[0, :] = 0.0  # an all-zero block (d = 0)
    q = quants.quantize(x, qtype)
    return q.reshape(n_blocks, type_size)


def plain(name):
    if name == "F32":
        x = (rng.standard_normal(250) * 10.0 ** rng.uniform(-3, 3, 250)).astype(np.float32)
        specials = np.array([0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-45], dtype=np.float32)
        raw = np.concatenate([x, specials]).view(np.uint8)
        return raw, quants.dequantize(raw, T.F32)
    bits = rng.integers(0, 1 << 16, 512, dtype=np.uint32).astype(np.uint16)
    if name == "F16":
        nan = ((bits & 0x7C00) == 0x7C00) & ((bits & 0x3FF) != 0)
        bits[nan] &= 0xFC00  # NaN -> inf
        bits[:4] = [0x0000, 0x8000, 0x0001, 0x83FF]  # zeros and subnormals
        raw = bits.view(np.uint8)
        return raw, quants.dequantize(raw, T.F16)
    raw = bits.view(np.uint8)
    return raw, quants.dequantize(raw, T.BF16)


REAL_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "models",
                          "SmolLM2-135M-Instruct.Q4_1.gguf")
REAL_ROWS = [("token_embd.weight", [0, 1, 9906, 49151]), ("blk.0.ffn_down.weight", [0, 575]),
             ("blk.29.attn_q.weight", [7]), ("blk.3.ffn_gate.weight", [1535])]


def real_model_rows(out_dir):
    from gguf import GGUFReader
    reader = GGUFReader(REAL_MODEL)
    tensors = {t.name: t for t in reader.tensors}
    lines, values = [], []
    for name, rows in REAL_ROWS:
        t = tensors[name]
        data = np.asarray(t.data)  # (rows, row bytes) for block types
        for r in rows:
            row = quants.dequantize(np.ascontiguousarray(data[r]), t.tensor_type).astype(np.float32).reshape(-1)
            lines.append(f"{name} {r} {row.size}")
            values.append(row)
    with open(os.path.join(out_dir, "smollm2_rows.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out_dir, "smollm2_rows.f32"), "wb") as f:
        f.write(np.concatenate(values).astype("<f4").tobytes())
    print(f"smollm2_rows: {len(lines)} rows")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    items = [(n, plain(n)) for n in ("F32", "F16", "BF16")]
    for name, (qtype, n_quant, n_rand, scale_offsets) in BLOCK_TYPES.items():
        parts = []
        if n_quant:
            parts.append(quantized_blocks(qtype, n_quant))
        parts.append(random_blocks(qtype, n_rand, scale_offsets))
        raw = np.ascontiguousarray(np.concatenate(parts, axis=0)).reshape(-1)
        items.append((name, (raw, quants.dequantize(raw, qtype))))
    for name, (raw, expected) in items:
        expected = np.ascontiguousarray(expected, dtype=np.float32).reshape(-1)
        with open(os.path.join(out_dir, name + ".bin"), "wb") as f:
            f.write(raw.tobytes())
        with open(os.path.join(out_dir, name + ".f32"), "wb") as f:
            f.write(expected.astype("<f4").tobytes())
        total += raw.nbytes + expected.nbytes
        print(f"{name:7s} {raw.nbytes:6d} bytes -> {expected.size:5d} floats")
    print(f"total {total} bytes")
    if os.path.exists(REAL_MODEL):
        real_model_rows(out_dir)
    else:
        print(f"{REAL_MODEL} not found: smollm2_rows not written")


if __name__ == "__main__":
    main()
