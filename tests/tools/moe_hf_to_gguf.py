#!/usr/bin/env python3
"""Converts the tiny Qwen3MoeForCausalLM fixture folder to an F32 `qwen3moe` GGUF the way llama.cpp's converter
lays it out (arch_qwen_moe's GGUF tests).

Usage: python3 tests/tools/moe_hf_to_gguf.py FIXTURE_DIR     (writes FIXTURE_DIR.gguf next to the folder)

Needs numpy and the `gguf` package (the safetensors file is read by hand, as tests/tools/hf_to_gguf.py does).
Conventions reproduced from convert_hf_to_gguf.py (Qwen3MoeModel) and llama.cpp's qwen3moe loader:
  - keys qwen3moe.expert_count / expert_used_count / expert_feed_forward_length, attention.key_length /
    value_length; feed_forward_length = the dense intermediate_size;
  - experts stacked into 3-D tensors blk.N.ffn_{gate,up,down}_exps.weight (numpy [E, out, in]); the router
    blk.N.ffn_gate_inp.weight [E, hidden] in F32; no permutation of q/k (NEOX rope);
  - a layer in mlp_only_layers keeps a dense FFN (blk.N.ffn_{gate,up,down}.weight): llama.cpp's loader has no such
    layer, imp's reads it from the tensors present.
"""
import json
import os
import sys

import numpy as np
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_to_gguf import read_safetensors, rope_params  # noqa: E402

ATTN = {"self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
        "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate.weight": "ffn_gate_inp.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}


def convert(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    if cfg["model_type"] != "qwen3_moe":
        sys.exit(f"{folder}: model_type {cfg['model_type']} is not qwen3_moe")
    t = read_safetensors(os.path.join(folder, "model.safetensors"))
    n_layer, n_embd = cfg["num_hidden_layers"], cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or n_embd // n_head
    n_expert = cfg.get("num_experts") or cfg["num_local_experts"]
    ff = cfg["moe_intermediate_size"]
    theta, _ = rope_params(cfg)

    out_path = folder.rstrip("/") + ".gguf"
    w = gguf.GGUFWriter(out_path, "qwen3moe")
    w.add_name(os.path.basename(folder.rstrip("/")))
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg.get("num_key_value_heads", n_head))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(theta)
    w.add_rope_dimension_count(head_dim)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_expert_count(n_expert)
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    w.add_expert_feed_forward_length(ff)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    out = {"token_embd.weight": t.pop("model.embed_tokens.weight"), "output_norm.weight": t.pop("model.norm.weight")}
    if "lm_head.weight" in t:
        out["output.weight"] = t.pop("lm_head.weight")
    for i in range(n_layer):
        p = f"model.layers.{i}."
        for hf, g in ATTN.items():
            if p + hf in t:
                out[f"blk.{i}.{g}"] = t.pop(p + hf)
        if p + "mlp.experts.gate_up_proj" in t:  # fused 3-D form
            gu = t.pop(p + "mlp.experts.gate_up_proj")
            gate, up, down = gu[:, :ff], gu[:, ff:], t.pop(p + "mlp.experts.down_proj")
        elif p + "mlp.experts.0.gate_proj.weight" in t:
            stack = lambda n: np.stack([t.pop(f"{p}mlp.experts.{e}.{n}.weight") for e in range(n_expert)])  # noqa
            gate, up, down = stack("gate_proj"), stack("up_proj"), stack("down_proj")
        else:
            continue
        out[f"blk.{i}.ffn_gate_exps.weight"] = gate
        out[f"blk.{i}.ffn_up_exps.weight"] = up
        out[f"blk.{i}.ffn_down_exps.weight"] = down
    if t:
        sys.exit(f"{folder}: tensors without a GGUF name: {sorted(t)[:5]}")
    for name in sorted(out):
        w.add_tensor(name, np.ascontiguousarray(out[name], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out_path}: {len(out)} tensors, {os.path.getsize(out_path) / 1024:.0f} KiB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: moe_hf_to_gguf.py FIXTURE_DIR")
    convert(sys.argv[1])
