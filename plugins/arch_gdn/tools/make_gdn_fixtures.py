#!/usr/bin/env python3
"""Builds the tiny random-weight Gated-DeltaNet hybrids and their fp32 transformers logits (arch_gdn's CPU tests).

Usage: /path/to/python-with-torch plugins/arch_gdn/tools/make_gdn_fixtures.py OUTDIR
       (OUTDIR is normally plugins/arch_gdn/tests/fixtures), then python3 plugins/arch_gdn/tools/gdn_hf_to_gguf.py
       for the GGUF files (see that script).
Needs torch, transformers 5.x (Qwen3_5Moe*, Qwen3Next*), numpy, safetensors. Writes, each folder with config.json,
model.safetensors, reference.json and reference_logits.f32 ([prompt + continuation, vocab] fp32; the continuation
run through transformers' cache, checked equal to one full forward):
    qwen35moe_tiny/   Qwen3_5MoeForConditionalGeneration (the multimodal wrapper: text_config, model.language_model.*,
                      a 1-block vision tower model.visual.*, untied lm_head) plus two mtp.* tensors the loader must
                      skip; GDN with separate in_proj_qkv / z / b / a, 2 key heads and 4 value heads (dk 16, dv 8),
                      layer_types [linear, full, linear, linear, full] (explicit, not periodic), 8 experts top-2,
                      shared expert with its sigmoid gate.
    qwen3next_tiny/   Qwen3NextForCausalLM: grouped in_proj_qkvz / in_proj_ba, full_attention_interval 2 (config.json without layer_types), 6 experts
                      top-2, per-expert tensors (mlp.experts.{e}.*_proj.weight, as save_pretrained writes them).
    qwen35_tiny/      Qwen3_5ForCausalLM (dense Qwen3.5, text-only: model_type qwen3_5_text, model.layers.* names,
                      SwiGLU FFN after every mixer), 2 key heads = 2 value heads, layer_types [linear, linear, full].
The weights are redrawn so attention is sharp, the decays exp(g) stay in a range where the recurrent state carries
information over many tokens, and every expert of every MoE layer is picked by some reference token.
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file

TOKENS = [1, 17, 200, 45, 3, 99, 150, 7, 250, 33, 64, 128]
CONTINUATION = [5, 222, 80, 11, 190]

COMMON = dict(vocab_size=320, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
              linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=8, linear_num_key_heads=2,
              linear_num_value_heads=4, moe_intermediate_size=16, shared_expert_intermediate_size=24,
              num_experts_per_tok=2, max_position_embeddings=1024, rms_norm_eps=1e-6, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2)
Q35_TEXT = dict(COMMON, num_hidden_layers=5, num_experts=8,
                layer_types=["linear_attention", "full_attention", "linear_attention", "linear_attention",
                             "full_attention"],
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.25,
                                 "mrope_section": [1, 1, 0], "mrope_interleaved": True})
Q35_VISION = dict(depth=1, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=64, patch_size=4,
                  num_position_embeddings=16)
Q35_DENSE = dict({k: v for k, v in COMMON.items() if "expert" not in k}, num_hidden_layers=3, intermediate_size=96,
                 linear_num_value_heads=2,
                 layer_types=["linear_attention", "linear_attention", "full_attention"],
                 rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.25})
QNEXT = dict(COMMON, num_hidden_layers=4, num_experts=6, full_attention_interval=2, norm_topk_prob=True,
             decoder_sparse_step=1, intermediate_size=96,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.25})


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):  # decay rates -exp(A_log) in [-2, -0.05]
                p.copy_(torch.log(0.05 + 1.95 * torch.rand(p.shape, generator=g)))
            elif name.endswith("dt_bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif "linear_attn.norm" in name:  # gated RMSNorm weight: plain (init 1)
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif p.dim() == 1:  # zero-centred RMSNorm weights: (1 + w)
                p.copy_(torch.rand(p.shape, generator=g) - 0.5)
            elif "conv1d" in name:  # [C, 1, K]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # [out, in] or experts [E, out, in]
                gain = 2.0 if any(s in name for s in ("q_proj", "k_proj", "mlp.gate.")) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(p.shape[-1]))


def routing_histogram(model, ids, n_expert):
    hist = {}

    def hook(name):
        def f(_mod, _inp, out):
            h = hist.setdefault(name, [0] * n_expert)
            for e in out[2].reshape(-1).tolist():
                h[e] += 1
        return f

    hs = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n.endswith("mlp.gate")]
    model(input_ids=torch.tensor([ids]))
    for h in hs:
        h.remove()
    return hist


def logits_of(model, ids, past=None):
    out = model(input_ids=torch.tensor([ids]), past_key_values=past, use_cache=True)
    return out.logits[0].float().numpy(), out.past_key_values


def build(make, n_expert, seed0):
    for seed in range(seed0, seed0 + 200):
        torch.manual_seed(seed)
        model = make().float().eval()
        randomize(model, seed)
        if n_expert == 0:
            return model, seed, {}
        hist = routing_histogram(model, TOKENS + CONTINUATION, n_expert)
        if all(min(h) > 0 for h in hist.values()):
            return model, seed, hist
    sys.exit("no seed routes a token to every expert")


def write(d, model, seed, hist, n_vocab, extra_tensors=None, per_expert=False):
    full, _ = logits_of(model, TOKENS + CONTINUATION)
    first, past = logits_of(model, TOKENS)
    cont, _ = logits_of(model, CONTINUATION, past)
    inc = np.concatenate([first, cont], axis=0)
    diff = float(np.abs(inc - full).max() / np.abs(full).max())
    assert diff < 1e-5, f"incremental and full-sequence logits differ ({diff})"
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    if per_expert:  # save_pretrained writes one tensor per expert, as the published Qwen3-Next checkpoints
        model.save_pretrained(d, safe_serialization=True)
        if os.path.exists(os.path.join(d, "generation_config.json")):
            os.remove(os.path.join(d, "generation_config.json"))
    else:  # the fused 3-D experts transformers keeps in memory, as the published Qwen3.5 / 3.6 checkpoints
        model.config.save_pretrained(d)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        sd.update(extra_tensors or {})
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    inc.astype("<f4").tofile(os.path.join(d, "reference_logits.f32"))
    ref = {"tokens": TOKENS, "continuation": CONTINUATION, "n_vocab": n_vocab,
           "logits_file": "reference_logits.f32", "logits_shape": list(inc.shape),
           "max_abs_logit": float(np.abs(inc).max()), "incremental_vs_full": diff, "routing_histogram": hist,
           "seed": seed,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__}}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f"{d}: {inc.shape[0]} positions, max|logit| {ref['max_abs_logit']:.3f}, seed {seed}, {size / 1024:.0f} KiB")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_gdn_fixtures.py OUTDIR")
    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float32)
    from transformers import (Qwen3_5ForCausalLM, Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration,
                              Qwen3_5TextConfig, Qwen3NextConfig, Qwen3NextForCausalLM)

    def q35():
        cfg = Qwen3_5MoeConfig(text_config=Q35_TEXT, vision_config=Q35_VISION, tie_word_embeddings=False)
        cfg._attn_implementation = "eager"
        cfg.text_config._attn_implementation = "eager"
        return Qwen3_5MoeForConditionalGeneration(cfg)

    def qnext():
        cfg = Qwen3NextConfig(**QNEXT)
        cfg._attn_implementation = "eager"
        return Qwen3NextForCausalLM(cfg)

    model, seed, hist = build(q35, Q35_TEXT["num_experts"], 7100)
    mtp = {"mtp.fc.weight": torch.randn(64, 128), "mtp.norm.weight": torch.zeros(64)}
    write(os.path.join(sys.argv[1], "qwen35moe_tiny"), model, seed, hist, Q35_TEXT["vocab_size"], mtp)
    def q35_dense():
        cfg = Qwen3_5TextConfig(**Q35_DENSE)
        cfg._attn_implementation = "eager"
        return Qwen3_5ForCausalLM(cfg)

    model, seed, hist = build(q35_dense, 0, 7200)
    write(os.path.join(sys.argv[1], "qwen35_tiny"), model, seed, hist, Q35_DENSE["vocab_size"], per_expert=True)
    model, seed, hist = build(qnext, QNEXT["num_experts"], 7300)
    d = os.path.join(sys.argv[1], "qwen3next_tiny")
    write(d, model, seed, hist, QNEXT["vocab_size"], per_expert=True)
    # the schedule from full_attention_interval (as the published Qwen3-Next configs give it), not layer_types
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    del cfg["layer_types"]
    cfg["full_attention_interval"] = QNEXT["full_attention_interval"]
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


if __name__ == "__main__":
    main()
