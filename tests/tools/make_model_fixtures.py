#!/usr/bin/env python3
"""Builds the tiny random-weight Hugging Face reference models and their fp32 logits.

Usage: python3 tests/tools/make_model_fixtures.py OUTDIR      (OUTDIR is normally tests/fixtures/models)

Needs torch, transformers (5.x; 4.x works too), numpy, safetensors. For each fixture it writes
    OUTDIR/<name>/config.json, model.safetensors   (save_pretrained, fp32)
    OUTDIR/<name>/reference.json                   tokens, continuation, n_vocab, library versions
    OUTDIR/<name>/reference_logits.f32             fp32 little-endian [len(tokens) + len(continuation), n_vocab]
The logits of the continuation are computed incrementally through the KV cache (past_key_values), so they exercise
pos0 > 0 the same way the engine does; the script checks they equal a single full-sequence forward.
Weights are re-drawn with a fixed seed at a scale where attention is sharp and every term matters (the default
0.02 init would make attention nearly uniform and hide RoPE or masking mistakes).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

TOKENS = [1, 17, 200, 45, 3, 99, 150, 7, 250, 33, 64, 128]
CONTINUATION = [5, 222, 80, 11, 190]


def rope_kwargs(config_cls, theta, scaling):
    """rope_theta / rope_scaling for transformers 4.x, rope_parameters for 5.x."""
    if "rope_parameters" in config_cls().to_dict() or hasattr(config_cls(), "rope_parameters"):
        params = {"rope_type": "default", "rope_theta": theta}
        if scaling:
            params.update(scaling)
        return {"rope_parameters": params}
    kw = {"rope_theta": theta}
    if scaling:
        kw["rope_scaling"] = dict(scaling)
    return kw


FIXTURES = {
    # Llama, untied LM head, 2 layers, GQA 4/2, head_dim 16.
    "llama_tiny": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=320, hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2), 10000.0, None),
    # Llama-3 rope scaling (all three wavelength bands are hit with head_dim 16, theta 5e5, original context 64),
    # tied embeddings, 3 layers.
    "llama3_tiny": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=256, hidden_size=64, intermediate_size=172, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2), 500000.0,
        {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
         "original_max_position_embeddings": 64}),
    # Qwen3: q/k norms, head_dim 24 != hidden/heads, tied embeddings.
    "qwen3_tiny": (Qwen3Config, Qwen3ForCausalLM, dict(
        vocab_size=384, hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=24, max_position_embeddings=512, rms_norm_eps=1e-6,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2), 1000000.0, None),
}


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # RMSNorm weights
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                gain = 2.0 if ("q_proj" in name or "k_proj" in name) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(p.shape[1]))


def logits_of(model, ids, past=None):
    out = model(input_ids=torch.tensor([ids]), past_key_values=past, use_cache=True)
    return out.logits[0].float().numpy(), out.past_key_values


def make(outdir, name, seed):
    config_cls, model_cls, kw, theta, scaling = FIXTURES[name]
    torch.manual_seed(seed)
    cfg = config_cls(**kw, **rope_kwargs(config_cls, theta, scaling))
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).float().eval()
    randomize(model, seed)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    with torch.no_grad():
        full, _ = logits_of(model, TOKENS + CONTINUATION)
        first, past = logits_of(model, TOKENS)
        cont, _ = logits_of(model, CONTINUATION, past)
    inc = np.concatenate([first, cont], axis=0)
    diff = float(np.abs(inc - full).max() / np.abs(full).max())
    assert diff < 1e-5, f"{name}: incremental and full-sequence logits differ ({diff})"

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    inc.astype("<f4").tofile(os.path.join(d, "reference_logits.f32"))
    ref = {
        "tokens": TOKENS,
        "continuation": CONTINUATION,
        "n_vocab": int(cfg.vocab_size),
        "logits_file": "reference_logits.f32",
        "logits_shape": list(inc.shape),
        "max_abs_logit": float(np.abs(inc).max()),
        "incremental_vs_full": diff,
        "seed": seed,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f"{name}: {inc.shape[0]} positions x {inc.shape[1]} vocab, max|logit| {ref['max_abs_logit']:.3f}, "
          f"{size / 1024:.0f} KiB in {d}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_model_fixtures.py OUTDIR")
    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float32)
    for i, name in enumerate(FIXTURES):
        make(sys.argv[1], name, 1234 + i)


if __name__ == "__main__":
    main()
