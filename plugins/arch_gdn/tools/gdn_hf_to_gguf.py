#!/usr/bin/env python3
"""Converts the tiny Gated-DeltaNet fixture folders (make_gdn_fixtures.py) to F32 GGUF files laid out the way
llama.cpp's converter writes them (arch_gdn's GGUF tests).

Usage: python3 plugins/arch_gdn/tools/gdn_hf_to_gguf.py FIXTURE_DIR [FIXTURE_DIR ...]
       writes FIXTURE_DIR.gguf next to each folder; for a qwen3_next folder also FIXTURE_DIR_legacy.gguf (the
       older single ssm_in tensor instead of attn_qkv + attn_gate).
Needs numpy and the `gguf` package (the safetensors file is read by tests/tools/hf_to_gguf.py's reader).
Conventions reproduced from convert_hf_to_gguf.py (Qwen3NextModel, Qwen3_5MoeTextModel) and FORMATS §2.5:
  - every *norm.weight gets + 1 (zero-centred norms), except linear_attn.norm.weight (ssm_norm);
  - ssm_a = -exp(A_log); ssm_dt.bias = dt_bias; ssm_conv1d = conv1d.weight squeezed to [C, K];
  - qwen3_next: in_proj_qkvz (grouped per key head) regrouped into attn_qkv [q; k; v] + attn_gate (z); in_proj_ba
    kept grouped as ssm_ba;
  - qwen3_5_moe (arch qwen35moe) and the dense qwen3_5[_text] (arch qwen35, SwiGLU ffn_gate / ffn_up / ffn_down):
    in_proj_qkv -> attn_qkv, in_proj_z -> attn_gate, in_proj_b -> ssm_beta,
    in_proj_a -> ssm_alpha, and, since the key heads are fewer than the value heads, the value heads reordered from
    grouped (j = g*R + r) to tiled (j' = r*Hk + g) order in the V rows of attn_qkv, attn_gate, ssm_beta/alpha, ssm_a,
    ssm_dt, the conv's V channels and ssm_out's input columns;
  - experts split into ffn_{gate,up,down}_exps [E, out, in]; shared expert ffn_*_shexp and ffn_gate_inp_shexp
    squeezed to [n_embd]; the vision tower is dropped; mtp.* tensors (qwen35*) become a block appended after the
    trunk, named as conversion/qwen.py _QwenMtpMixin does (mtp.fc -> blk.<n_layer>.nextn.eh_proj, mtp.norm ->
    nextn.shared_head_norm, pre_fc_norm_embedding / _hidden -> nextn.enorm / hnorm, mtp.layers.0.* -> blk.<n_layer>.*;
    block_count + 1, nextn_predict_layers 1), which the text model must not read;
  - the layer schedule both ways: {arch}.attention.recurrent_layers from layer_types (one bool per block, the MTP
    block false) and {arch}.full_attention_interval (Qwen3NextModel.set_gguf_parameters).
"""
import json
import os
import sys

import numpy as np
import gguf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "tools"))
from hf_to_gguf import read_safetensors  # noqa: E402

ATTN = {"self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
        "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "post_attention_norm.weight",
        "mlp.gate.weight": "ffn_gate_inp.weight", "mlp.shared_expert.gate_proj.weight": "ffn_gate_shexp.weight",
        "mlp.shared_expert.up_proj.weight": "ffn_up_shexp.weight",
        "mlp.shared_expert.down_proj.weight": "ffn_down_shexp.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight"}


def tiled_order(hk, hv):
    """new v-head j' = r*Hk + g holds original head g*R + r."""
    R = hv // hk
    return np.array([(jn % hk) * R + jn // hk for jn in range(hv)])


def convert(folder, legacy=False):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    mt = cfg["model_type"]
    tc = cfg.get("text_config", cfg)
    arch = {"qwen3_next": "qwen3next", "qwen3_5_moe": "qwen35moe", "qwen3_5": "qwen35", "qwen3_5_text": "qwen35"}.get(mt)
    if arch is None:
        sys.exit(f"{folder}: model_type {mt} is not qwen3_next, qwen3_5_moe, qwen3_5 or qwen3_5_text")
    t = read_safetensors(os.path.join(folder, "model.safetensors"))
    n_layer, n_embd = tc["num_hidden_layers"], tc["hidden_size"]
    hk, hv = tc["linear_num_key_heads"], tc["linear_num_value_heads"]
    dk, dv = tc["linear_key_head_dim"], tc["linear_value_head_dim"]
    R, kd, vd = hv // hk, hk * dk, hv * dv
    ff = tc.get("moe_intermediate_size", 0)
    moe = tc.get("num_experts", 0) > 0
    rp = tc.get("rope_parameters") or {}
    n_rot = int(round(tc["head_dim"] * rp.get("partial_rotary_factor", 0.25)))
    types = tc.get("layer_types") or [
        "full_attention" if (i + 1) % tc.get("full_attention_interval", 4) == 0 else "linear_attention"
        for i in range(n_layer)]

    out_path = folder.rstrip("/") + ("_legacy" if legacy else "") + ".gguf"
    w = gguf.GGUFWriter(out_path, arch)
    w.add_name(os.path.basename(folder.rstrip("/")))
    w.add_context_length(tc.get("max_position_embeddings", 2048))
    w.add_embedding_length(n_embd)
    mtp = sorted(n for n in t if n.startswith("mtp.")) if arch != "qwen3next" else []
    w.add_block_count(n_layer + (1 if mtp else 0))  # the MTP block appended after the trunk, as llama.cpp does
    if mtp:
        w.add_nextn_predict_layers(1)
    w.add_head_count(tc["num_attention_heads"])
    w.add_head_count_kv(tc["num_key_value_heads"])
    w.add_key_length(tc["head_dim"])
    w.add_value_length(tc["head_dim"])
    w.add_layer_norm_rms_eps(tc["rms_norm_eps"])
    w.add_rope_freq_base(rp.get("rope_theta", 10000.0))
    w.add_rope_dimension_count(n_rot)
    if arch != "qwen3next":
        w.add_rope_dimension_sections(list(rp.get("mrope_section", [11, 11, 10])) + [0])
    w.add_vocab_size(tc["vocab_size"])
    if moe:
        w.add_expert_count(tc["num_experts"])
        w.add_expert_used_count(tc["num_experts_per_tok"])
        w.add_expert_feed_forward_length(ff)
        w.add_expert_shared_feed_forward_length(tc["shared_expert_intermediate_size"])
    else:
        w.add_feed_forward_length(tc["intermediate_size"])
    w.add_ssm_conv_kernel(tc["linear_conv_kernel_dim"])
    w.add_ssm_state_size(dk)
    w.add_ssm_group_count(hk)
    w.add_ssm_time_step_rank(hv)
    w.add_ssm_inner_size(vd)
    w.add_recurrent_layers([ty == "linear_attention" for ty in types] + ([False] if mtp else []))
    w.add_full_attention_interval(tc.get("full_attention_interval", 4))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    base = "model.language_model." if "model.language_model.embed_tokens.weight" in t else "model."
    out = {"token_embd.weight": t.pop(base + "embed_tokens.weight"),
           "output_norm.weight": t.pop(base + "norm.weight") + 1.0,
           "output.weight": t.pop("lm_head.weight")}
    perm = tiled_order(hk, hv) if arch != "qwen3next" and hk != hv else np.arange(hv)
    vrows = lambda m: m.reshape(hv, dv, *m.shape[1:])[perm].reshape(m.shape)  # noqa: E731
    for i in range(n_layer):
        p, b = f"{base}layers.{i}.", f"blk.{i}."
        for hf, g in ATTN.items():
            if p + hf in t:
                x = t.pop(p + hf)
                out[b + g] = x + 1.0 if hf.endswith("norm.weight") else x
        if p + "mlp.shared_expert_gate.weight" in t:
            out[b + "ffn_gate_inp_shexp.weight"] = t.pop(p + "mlp.shared_expert_gate.weight").reshape(n_embd)
        if moe:  # dense layers' ffn_{gate,up,down} went through ATTN above
            if p + "mlp.experts.gate_up_proj" in t:
                gu = t.pop(p + "mlp.experts.gate_up_proj")
                gate, up, down = gu[:, :ff], gu[:, ff:], t.pop(p + "mlp.experts.down_proj")
            else:
                ne = tc["num_experts"]
                st = lambda n: np.stack([t.pop(f"{p}mlp.experts.{e}.{n}.weight") for e in range(ne)])  # noqa: E731
                gate, up, down = st("gate_proj"), st("up_proj"), st("down_proj")
            out[b + "ffn_gate_exps.weight"], out[b + "ffn_up_exps.weight"], out[b + "ffn_down_exps.weight"] = \
                gate, up, down
        if types[i] != "linear_attention":
            continue
        la = p + "linear_attn."
        conv = t.pop(la + "conv1d.weight").reshape(2 * kd + vd, -1)
        A, dt = -np.exp(t.pop(la + "A_log")), t.pop(la + "dt_bias")
        outp = t.pop(la + "out_proj.weight")
        if arch == "qwen3next":
            qkvz = t.pop(la + "in_proj_qkvz.weight")
            if legacy:
                out[b + "ssm_in.weight"] = qkvz
            else:
                grp = qkvz.reshape(hk, 2 * dk + 2 * R * dv, n_embd)
                q, k = grp[:, :dk], grp[:, dk:2 * dk]
                v, z = grp[:, 2 * dk:2 * dk + R * dv], grp[:, 2 * dk + R * dv:]
                out[b + "attn_qkv.weight"] = np.concatenate(
                    [q.reshape(kd, n_embd), k.reshape(kd, n_embd), v.reshape(vd, n_embd)])
                out[b + "attn_gate.weight"] = z.reshape(vd, n_embd)
            out[b + "ssm_ba.weight"] = t.pop(la + "in_proj_ba.weight")
        else:
            qkv = t.pop(la + "in_proj_qkv.weight")
            out[b + "attn_qkv.weight"] = np.concatenate([qkv[:2 * kd], vrows(qkv[2 * kd:])])
            out[b + "attn_gate.weight"] = vrows(t.pop(la + "in_proj_z.weight"))
            out[b + "ssm_beta.weight"] = t.pop(la + "in_proj_b.weight")[perm]
            out[b + "ssm_alpha.weight"] = t.pop(la + "in_proj_a.weight")[perm]
            conv = np.concatenate([conv[:2 * kd], vrows(conv[2 * kd:])])
            A, dt = A[perm], dt[perm]
            outp = outp.reshape(n_embd, hv, dv)[:, perm].reshape(n_embd, vd)
        out[b + "ssm_conv1d.weight"] = conv
        out[b + "ssm_a"], out[b + "ssm_dt.bias"] = A, dt
        out[b + "ssm_norm.weight"] = t.pop(la + "norm.weight")
        out[b + "ssm_out.weight"] = outp
    nextn = {"fc": "eh_proj", "pre_fc_norm_embedding": "enorm", "pre_fc_norm_hidden": "hnorm",
             "norm": "shared_head_norm"}
    for n in mtp:  # mtp.fc.weight -> blk.<n_layer>.nextn.eh_proj.weight, mtp.layers.0.X -> blk.<n_layer>.X
        parts, x = n.split(".", 3), t.pop(n)
        x = x + 1.0 if n.endswith("norm.weight") else x  # zero-centred like the trunk's norms
        if len(parts) == 3 and parts[1] in nextn:
            out[f"blk.{n_layer}.nextn.{nextn[parts[1]]}.{parts[2]}"] = x
        elif len(parts) == 4 and parts[1] == "layers" and parts[3] in ATTN:
            out[f"blk.{n_layer + int(parts[2])}.{ATTN[parts[3]]}"] = x
        else:
            sys.exit(f"{folder}: MTP tensor without a GGUF name: {n}")
    left = [n for n in t if not n.startswith("model.visual.")]
    if left:
        sys.exit(f"{folder}: tensors without a GGUF name: {sorted(left)[:5]}")
    for name in sorted(out):
        w.add_tensor(name, np.ascontiguousarray(out[name], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out_path}: {len(out)} tensors, {os.path.getsize(out_path) / 1024:.0f} KiB")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: gdn_hf_to_gguf.py FIXTURE_DIR [FIXTURE_DIR ...]")
    for d in sys.argv[1:]:
        convert(d)
        with open(os.path.join(d, "config.json")) as f:
            if json.load(f)["model_type"] == "qwen3_next":
                convert(d, legacy=True)
