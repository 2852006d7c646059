#!/usr/bin/env python3
"""Builds the tiny random-weight Qwen3MoeForCausalLM reference models and their fp32 logits (arch_qwen_moe's tests).

Usage: python3 tests/tools/make_moe_fixtures.py OUTDIR      (OUTDIR is normally tests/fixtures/models)
       then: python3 tests/tools/moe_hf_to_gguf.py OUTDIR/qwen3moe_tiny   (writes OUTDIR/qwen3moe_tiny.gguf)

Needs torch, transformers 5.x, numpy, safetensors. Writes
    OUTDIR/qwen3moe_tiny/        config.json, model.safetensors (save_pretrained: one tensor per expert,
                                 mlp.experts.{e}.{gate,up,down}_proj.weight), reference.json, reference_logits.f32
    OUTDIR/qwen3moe_tiny_fused/  the same model with the fused 3-D expert tensors transformers 5 keeps in memory
                                 (mlp.experts.gate_up_proj [E, 2 ff, hidden], mlp.experts.down_proj [E, hidden, ff]);
                                 same reference files
The model: 4 layers, 8 experts top-2 (norm_topk_prob), layer 1 dense through mlp_only_layers, GQA 4/2, head_dim 24.
The logits of the continuation are computed through the KV cache (checked equal to one full forward). Weights are
re-drawn at a scale where attention is sharp; router rows are drawn so every expert is picked by some token (the
script checks the routing histogram of the reference tokens).
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
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

TOKENS = [1, 17, 200, 45, 3, 99, 150, 7, 250, 33, 64, 128]
CONTINUATION = [5, 222, 80, 11, 190]
CONFIG = dict(vocab_size=320, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, head_dim=24, num_experts=8, num_experts_per_tok=2,
              norm_topk_prob=True, mlp_only_layers=[1], decoder_sparse_step=1, max_position_embeddings=512,
              rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
              rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # RMSNorm weights
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # [out, in] or experts [E, out, in]
                gain = 2.0 if ("q_proj" in name or "k_proj" in name or "mlp.gate." in name) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(p.shape[-1]))


def logits_of(model, ids, past=None):
    out = model(input_ids=torch.tensor([ids]), past_key_values=past, use_cache=True)
    return out.logits[0].float().numpy(), out.past_key_values


def routing_histogram(model, ids):
    """Experts picked per MoE layer over the reference tokens (hooks on the routers)."""
    hist = {}

    def hook(name):
        def f(_mod, _inp, out):
            idx = out[2].reshape(-1).tolist()
            h = hist.setdefault(name, [0] * CONFIG["num_experts"])
            for e in idx:
                h[e] += 1
        return f

    hs = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n.endswith("mlp.gate")]
    model(input_ids=torch.tensor([ids]))
    for h in hs:
        h.remove()
    return hist


def write(d, model, inc, diff, seed, fused, hist):
    os.makedirs(d, exist_ok=True)
    if fused:
        model.config.save_pretrained(d)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    else:
        model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    inc.astype("<f4").tofile(os.path.join(d, "reference_logits.f32"))
    ref = {
        "tokens": TOKENS,
        "continuation": CONTINUATION,
        "n_vocab": CONFIG["vocab_size"],
        "logits_file": "reference_logits.f32",
        "logits_shape": list(inc.shape),
        "max_abs_logit": float(np.abs(inc).max()),
        "incremental_vs_full": diff,
        "routing_histogram": hist,
        "seed": seed,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f"{d}: {inc.shape[0]} positions x {inc.shape[1]} vocab, max|logit| {ref['max_abs_logit']:.3f}, "
          f"{size / 1024:.0f} KiB")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_moe_fixtures.py OUTDIR")
    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float32)
    for seed in range(4321, 4421):  # the first seed whose routers use every expert on the reference tokens
        torch.manual_seed(seed)
        cfg = Qwen3MoeConfig(**CONFIG)
        cfg._attn_implementation = "eager"
        model = Qwen3MoeForCausalLM(cfg).float().eval()
        randomize(model, seed)
        hist = routing_histogram(model, TOKENS + CONTINUATION)
        if all(min(h) > 0 for h in hist.values()):
            break
    full, _ = logits_of(model, TOKENS + CONTINUATION)
    first, past = logits_of(model, TOKENS)
    cont, _ = logits_of(model, CONTINUATION, past)
    inc = np.concatenate([first, cont], axis=0)
    diff = float(np.abs(inc - full).max() / np.abs(full).max())
    assert diff < 1e-5, f"incremental and full-sequence logits differ ({diff})"
    for layer, h in hist.items():
        assert min(h) > 0, f"{layer}: an expert got no token of the reference ({h}); draw other router weights"
    print("routing histogram:", hist)
    for sub, fused in (("qwen3moe_tiny", False), ("qwen3moe_tiny_fused", True)):
        d = os.path.join(sys.argv[1], sub)
        if os.path.isdir(d):
            shutil.rmtree(d)
        write(d, model, inc, diff, seed, fused, hist)


if __name__ == "__main__":
    main()
