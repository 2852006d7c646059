#!/usr/bin/env python3
"""Writes the model-reader fixtures under tests/fixtures/readers/ and the file expected.json that
core/src/model/reader_fixtures_test.cpp checks them against.

  python3 tests/tools/make_reader_fixtures.py            # (re)write the fixtures

GGUF files are written with the `gguf` package (GGUFWriter; quantized data from gguf.quants.quantize where it
implements the format, otherwise random blocks, which a container reader cannot tell apart). Safetensors files are
written by hand (struct + json) so every dtype, including BF16/F8, is covered. Expected values come from what this
script wrote; tensor offsets of the GGUF files are read back with gguf.GGUFReader (an independent reader).
Deterministic: same output on every run.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf.constants import GGMLQuantizationType as Q, GGUFValueType as V
from gguf.quants import quantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "readers")
rng = np.random.default_rng(1234)

F32 = lambda x: float(np.float32(x))  # noqa: E731  the value a f32 field holds

TYPE_NAME = {V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32", V.INT32: "i32",
             V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "str", V.UINT64: "u64", V.INT64: "i64", V.FLOAT64: "f64"}


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- GGUF
def gguf_file(name, arch, kvs, tensors, alignment=None):
    """kvs: [(key, vtype, value, sub_type)], tensors: [(name, ggml type, shape (outermost first), bytes array)]"""
    path = os.path.join(OUT, name)
    w = gguf.GGUFWriter(path, arch)
    if alignment:
        w.add_custom_alignment(alignment)
    meta = [{"key": "general.architecture", "type": "str", "value": arch}]
    if alignment:
        meta.append({"key": "general.alignment", "type": "u32", "value": alignment})
    for key, vt, val, sub in kvs:
        w.add_key_value(key, val, vt, sub_type=sub)
        if vt == V.ARRAY:
            conv = (lambda x: F32(x)) if sub == V.FLOAT32 else (lambda x: x)
            meta.append({"key": key, "type": f"arr[{TYPE_NAME[sub]}]", "value": [conv(x) for x in val]})
        else:
            meta.append({"key": key, "type": TYPE_NAME[vt], "value": F32(val) if vt == V.FLOAT32 else val})
    exp_tensors = []
    for tname, qt, shape, arr in tensors:
        if qt in (Q.F32, Q.F16, Q.F64, Q.I8, Q.I16, Q.I32, Q.I64):
            w.add_tensor(tname, arr)
        else:
            w.add_tensor(tname, arr, raw_dtype=qt)
        exp_tensors.append({"name": tname, "type": qt.name, "ggml_type": int(qt), "shape": list(shape),
                            "nbytes": arr.nbytes, "sha256": sha(arr.tobytes())})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # absolute data offsets, from the gguf package's own reader
    r = gguf.GGUFReader(path)
    offs = {t.name: int(t.data_offset) for t in r.tensors}
    for t in exp_tensors:
        t["offset"] = offs[t["name"]]
    return {"file": name, "version": 3, "alignment": alignment or 32, "architecture": arch,
            "size": os.path.getsize(path), "metadata": meta, "tensors": exp_tensors}


def plain(shape, dtype):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def quant(shape, qt):
    x = rng.standard_normal(shape).astype(np.float32)
    try:
        return quantize(x, qt)
    except NotImplementedError:  # no reference quantizer in gguf-py: random blocks of the right size
        blk, size = gguf.GGML_QUANT_SIZES[qt]
        return rng.integers(0, 256, size=(*shape[:-1], shape[-1] // blk * size), dtype=np.uint8)


def make_gguf():
    kvs = [
        ("test.u8", V.UINT8, 200, None), ("test.i8", V.INT8, -100, None),
        ("test.u16", V.UINT16, 60000, None), ("test.i16", V.INT16, -30000, None),
        ("test.u32", V.UINT32, 4000000000, None), ("test.i32", V.INT32, -2000000000, None),
        ("test.f32", V.FLOAT32, 3.14159, None), ("test.bool_true", V.BOOL, True, None),
        ("test.bool_false", V.BOOL, False, None), ("test.str", V.STRING, "h\u00e9llo w\u00f6rld \u2713 \U0001F642", None),
        ("test.str_empty", V.STRING, "", None), ("test.u64", V.UINT64, 2**64 - 1, None),
        ("test.i64", V.INT64, -2**63, None), ("test.f64", V.FLOAT64, 2.718281828459045, None),
        ("test.f64_tiny", V.FLOAT64, 5e-324, None),
        ("test.arr.u8", V.ARRAY, [0, 1, 255], V.UINT8), ("test.arr.i8", V.ARRAY, [-128, 0, 127], V.INT8),
        ("test.arr.u16", V.ARRAY, [0, 65535], V.UINT16), ("test.arr.i16", V.ARRAY, [-32768, 32767], V.INT16),
        ("test.arr.u32", V.ARRAY, [1, 2, 4294967295], V.UINT32), ("test.arr.i32", V.ARRAY, [-2**31, 7], V.INT32),
        ("test.arr.f32", V.ARRAY, [0.5, -1.25, 1e-3, 3e38], V.FLOAT32),
        ("test.arr.bool", V.ARRAY, [True, False, True], V.BOOL),
        ("test.arr.str", V.ARRAY, ["a", "", "\u00fcn\u00ef", "with space", "\u0120the"], V.STRING),
        ("test.arr.u64", V.ARRAY, [0, 2**64 - 1], V.UINT64), ("test.arr.i64", V.ARRAY, [-2**63, 2**63 - 1], V.INT64),
        ("test.arr.f64", V.ARRAY, [1.5, -0.0, 1e300], V.FLOAT64),
        ("test.arr.long", V.ARRAY, list(range(40)), V.INT32),
        ("tokenizer.ggml.tokens", V.ARRAY, ["<s>", "</s>", "\u0120Paris", "\n"], V.STRING),
    ]
    t = []
    for name, dt, shape in [("plain.f32", np.float32, (3, 4)), ("plain.f16", np.float16, (2, 8)),
                            ("plain.f64", np.float64, (2, 2)), ("plain.i8", np.int8, (5,)),
                            ("plain.i16", np.int16, (3,)), ("plain.i32", np.int32, (2, 3)),
                            ("plain.i64", np.int64, (2,)), ("plain.f32_3d", np.float32, (2, 3, 4)),
                            ("plain.f32_4d", np.float32, (1, 2, 3, 4))]:
        qt = {np.float32: Q.F32, np.float16: Q.F16, np.float64: Q.F64, np.int8: Q.I8, np.int16: Q.I16,
              np.int32: Q.I32, np.int64: Q.I64}[dt]
        t.append((name, qt, shape, plain(shape, dt)))
    scalar = np.array(1.5, dtype=np.float32)
    t.append(("plain.scalar", Q.F32, [], scalar))
    for qt, shape in [(Q.BF16, (4, 4)), (Q.Q4_0, (2, 64)), (Q.Q4_1, (2, 32)), (Q.Q5_0, (2, 32)), (Q.Q5_1, (1, 64)),
                      (Q.Q8_0, (3, 32)), (Q.Q2_K, (1, 256)), (Q.Q3_K, (1, 256)), (Q.Q4_K, (2, 256)),
                      (Q.Q5_K, (1, 256)), (Q.Q6_K, (2, 256)), (Q.Q8_K, (1, 256)), (Q.IQ4_NL, (2, 32)),
                      (Q.IQ4_XS, (1, 256)), (Q.TQ1_0, (1, 256)), (Q.TQ2_0, (1, 256)), (Q.MXFP4, (2, 32)),
                      (Q.NVFP4, (1, 64)), (Q.Q4_0, (2, 2, 32))]:
        name = f"quant.{qt.name.lower()}" + ("_3d" if len(shape) == 3 else "")
        t.append((name, qt, shape, quant(shape, qt)))
    files = [gguf_file("all_types.gguf", "llama", kvs, t)]
    files.append(gguf_file("align64.gguf", "qwen3", [("qwen3.block_count", V.UINT32, 2, None)],
                           [("a.weight", Q.F32, (3,), plain((3,), np.float32)),
                            ("b.weight", Q.Q8_0, (1, 32), quant((1, 32), Q.Q8_0)),
                            ("c.weight", Q.F16, (5,), plain((5,), np.float16))], alignment=64))
    return files


# ---------------------------------------------------------------- safetensors
ST_DTYPES = {  # name -> (bytes per element, numpy dtype to draw random bits from)
    "F64": (8, np.uint64), "I64": (8, np.int64), "U64": (8, np.uint64), "F32": (4, np.float32),
    "I32": (4, np.int32), "U32": (4, np.uint32), "F16": (2, np.float16), "BF16": (2, np.uint16),
    "I16": (2, np.int16), "U16": (2, np.uint16), "I8": (1, np.int8), "U8": (1, np.uint8),
    "BOOL": (1, np.bool_), "F8_E4M3": (1, np.uint8), "F8_E5M2": (1, np.uint8),
}


def st_bytes(dtype, shape):
    size, npd = ST_DTYPES[dtype]
    n = int(np.prod(shape)) if shape else 1
    if npd == np.float32 or npd == np.float16:
        return rng.standard_normal(n).astype(npd).tobytes()
    if npd == np.bool_:
        return rng.integers(0, 2, size=n, dtype=np.uint8).tobytes()
    return rng.integers(0, 256, size=n * size, dtype=np.uint8).tobytes()


def st_file(path, tensors, metadata):
    """tensors: [(name, dtype, shape)], laid out by descending element size (as the reference writer does)."""
    order = sorted(tensors, key=lambda t: (-ST_DTYPES[t[1]][0], t[0]))
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape in order:
        b = st_bytes(dt, shape)
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append((name, dt, shape, b, off))
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for *_, b, _o in blobs:
            f.write(b)
    base = 8 + len(h)
    return [{"name": n, "type": dt, "shape": list(s), "nbytes": len(b), "sha256": sha(b), "offset": base + o,
             "file": os.path.basename(path)} for n, dt, s, b, o in blobs], os.path.getsize(path)


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "arr"
    return "json"


def flatten(obj, prefix, out):
    for k, v in obj.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            flatten(v, key, out)
        elif v is None:
            continue
        elif isinstance(v, list):
            kinds = {json_type(x) for x in v}
            elem = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "")
            vals = [json.dumps(x, separators=(",", ":"), ensure_ascii=False) if isinstance(x, dict) else x for x in v]
            out.append({"key": key, "type": f"arr[{elem}]", "value": vals})
        else:
            out.append({"key": key, "type": json_type(v), "value": v})


def make_safetensors():
    res = []
    all_dtypes = [(f"t.{d.lower()}", d, (2, 3) if d in ("F32", "BF16") else (4,)) for d in ST_DTYPES]
    all_dtypes += [("t.scalar", "F32", ()), ("t.empty", "F32", (0, 3)), ("t.f16_3d", "F16", (2, 1, 3))]
    tensors, size = st_file(os.path.join(OUT, "tiny.safetensors"), all_dtypes,
                            {"format": "pt", "note": "\u00fcn\u00efcode \U0001F642"})
    res.append({"path": "tiny.safetensors", "folder": False, "architecture": "", "size": size, "tensors": tensors,
                "metadata": [{"key": "__safetensors.format", "type": "str", "value": "pt"},
                             {"key": "__safetensors.note", "type": "str", "value": "\u00fcn\u00efcode \U0001F642"}]})

    # sharded folder: index.json + 2 shards + config.json
    d = os.path.join(OUT, "sharded")
    os.makedirs(d, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
        "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "rope_scaling": {"factor": 8.0, "rope_type": "llama3", "low_freq_factor": 1, "original": {"max": 8192}},
        "eos_token_id": [1, 2], "bos_token_id": 0, "sliding_window": None, "big": 2**64 - 1, "neg": -5,
        "escapes": "q\"b\\s/\t\n\u00e9\U0001F600\u20ac", "mixed": [1, "x", 2.5, True, None, {"k": [1, 2]}],
        "empty_list": [], "empty_obj": {}, "f_exp": 6.02e23, "layer_types": ["full_attention", "linear_attention"],
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=True)  # \u escapes incl. surrogate pairs
    s1 = [("model.embed_tokens.weight", "BF16", (8, 4)), ("model.layers.0.input_layernorm.weight", "F32", (4,)),
          ("model.layers.0.mlp.up_proj.weight", "F16", (6, 4))]
    s2 = [("model.layers.1.input_layernorm.weight", "F32", (4,)), ("lm_head.weight", "BF16", (8, 4))]
    t1, z1 = st_file(os.path.join(d, "model-00001-of-00002.safetensors"), s1, {"format": "pt"})
    t2, z2 = st_file(os.path.join(d, "model-00002-of-00002.safetensors"), s2, {"format": "pt"})
    wm = {t["name"]: "model-00001-of-00002.safetensors" for t in t1}
    wm.update({t["name"]: "model-00002-of-00002.safetensors" for t in t2})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(t["nbytes"] for t in t1 + t2)}, "weight_map": wm}, f, indent=2)
    meta = []
    flatten(config, "", meta)
    meta.append({"key": "__safetensors.format", "type": "str", "value": "pt"})
    res.append({"path": "sharded", "folder": True, "architecture": "llama", "size": z1 + z2, "tensors": t1 + t2,
                "metadata": meta})

    # single-file folder
    d = os.path.join(OUT, "single")
    os.makedirs(d, exist_ok=True)
    config = {"model_type": "qwen3", "vocab_size": 16, "head_dim": 4}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    t, z = st_file(os.path.join(d, "model.safetensors"), [("w", "BF16", (2, 2)), ("b", "F32", (2,))], None)
    meta = []
    flatten(config, "", meta)
    res.append({"path": "single", "folder": True, "architecture": "qwen3", "size": z, "tensors": t, "metadata": meta})
    return res


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {"gguf": make_gguf(), "safetensors": make_safetensors()}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
