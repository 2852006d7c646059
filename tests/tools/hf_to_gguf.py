#!/usr/bin/env python3
"""Converts the tiny Hugging Face fixture folders to F32 GGUF files the way llama.cpp's converter lays them out.

Usage: python3 tests/tools/hf_to_gguf.py FIXTURE_DIR [FIXTURE_DIR ...]
       writes FIXTURE_DIR.gguf next to each folder (tests/fixtures/models/llama_tiny -> .../llama_tiny.gguf).

Needs only numpy and the `gguf` package (the safetensors file is read by hand). Conventions reproduced:
  - tensor names from gguf's own name map (token_embd, blk.N.attn_q, output_norm, output, ...);
  - llama: q/k rows permuted per head so the GGUF uses adjacent-pair ("normal") RoPE; qwen3: no permutation;
  - qwen3: attention.key_length / value_length written (head_dim differs from hidden/heads);
  - Llama-3 rope scaling: rope_freqs.weight (n_rot/2 divisors of the angle) precomputed from rope_scaling;
  - tied embeddings: no output.weight.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import gguf

ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        if info["dtype"] == "BF16":
            raw = np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            arr = np.frombuffer(data[b:e], dtype=np.dtype(ST_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def permute(w, n_head):
    """HF rotate-half q/k rows -> interleaved pairs (the llama converter's permutation)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_params(cfg):
    """(theta, scaling dict or None) from a transformers 4.x or 5.x config."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and rp:
        theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
        return theta, (rp if rp.get("rope_type", "default") != "default" else None)
    sc = cfg.get("rope_scaling")
    return cfg.get("rope_theta", 10000.0), sc


def llama3_factors(n_rot, base, sc):
    factor = sc.get("factor", 8.0)
    low_f = sc.get("low_freq_factor", 1.0)
    high_f = sc.get("high_freq_factor", 4.0)
    orig = sc.get("original_max_position_embeddings", 8192)
    low_wl, high_wl = orig / low_f, orig / high_f
    out = []
    for i in range(0, n_rot, 2):
        wl = 2 * math.pi / (base ** (-i / n_rot))
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (orig / wl - low_f) / (high_f - low_f)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def convert(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    arch = cfg["model_type"]
    if arch not in ("llama", "qwen3"):
        sys.exit(f"{folder}: model_type {arch} not handled")
    tensors = read_safetensors(os.path.join(folder, "model.safetensors"))
    n_layer = cfg["num_hidden_layers"]
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or n_embd // n_head
    theta, scaling = rope_params(cfg)
    model_arch = gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN3
    names = gguf.get_tensor_name_map(model_arch, n_layer)

    out_path = folder.rstrip("/") + ".gguf"
    w = gguf.GGUFWriter(out_path, arch)
    w.add_name(os.path.basename(folder.rstrip("/")))
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(theta)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg["vocab_size"])
    if arch == "qwen3":
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "llama3":
            w.add_tensor("rope_freqs.weight", llama3_factors(head_dim, theta, scaling))
        elif kind == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(scaling["factor"])
        else:
            sys.exit(f"{folder}: rope scaling {kind} not handled")

    for hf_name in sorted(tensors):
        data = tensors[hf_name]
        if arch == "llama" and hf_name.endswith("self_attn.q_proj.weight"):
            data = permute(data, n_head)
        elif arch == "llama" and hf_name.endswith("self_attn.k_proj.weight"):
            data = permute(data, n_kv)
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            sys.exit(f"{folder}: no GGUF name for {hf_name}")
        w.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out_path}: {len(tensors)} tensors, {os.path.getsize(out_path) / 1024:.0f} KiB")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: hf_to_gguf.py FIXTURE_DIR [FIXTURE_DIR ...]")
    for folder in sys.argv[1:]:
        convert(folder)


if __name__ == "__main__":
    main()
