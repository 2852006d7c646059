#!/usr/bin/env python3
"""Builds the NVFP4 and FP8 test fixtures with the real producers' functions (quant_producers.py).

Usage: python3 tests/tools/make_quant_fixtures.py          (from the repository root; writes into the plugins' tests)

Needs torch, transformers, safetensors, numpy, nvidia-modelopt and compressed-tensors. Writes
  plugins/quant_nvfp4/tests/fixtures/dequant.safetensors   ModelOpt and compressed-tensors NVFP4 matrices with the
                                                           producers' fp32 dequantization ("<case>.expected")
  plugins/quant_fp8/tests/fixtures/dequant.safetensors     the same for FP8 (per tensor, per channel F32 / BF16)
  plugins/quant_nvfp4/tests/fixtures/models/<name>/        tiny quantized Llama / Qwen3 / Qwen3-MoE checkpoints (config.json,
  plugins/quant_fp8/tests/fixtures/models/<name>/          hf_quant_config.json for ModelOpt, model.safetensors) and
                                                           transformers' fp32 logits on the dequantized weights
                                                           (reference.json, reference_logits.f32, as arch_llama's)
"""
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quant_producers as qp  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NV = os.path.join(ROOT, "plugins/quant_nvfp4/tests/fixtures")
F8 = os.path.join(ROOT, "plugins/quant_fp8/tests/fixtures")
TOKENS = [1, 17, 200, 45, 3, 99, 150, 7, 250, 33, 64, 128]
CONTINUATION = [5, 222, 80, 11, 190]
MO_VERSION = "0.47.0"


def special_matrix(g):
    """[16, 64] with a zero block, blocks small enough for subnormal E4M3 scales, and tiny negatives (-0 codes)."""
    w = torch.randn(16, 64, generator=g)
    w[0, :16] = 0.0                                   # zero block: ModelOpt scale 1.0, compressed-tensors eps
    w[1, :16] = torch.randn(16, generator=g) * 1e-5   # block amax / amax ~ 1e-5: subnormal E4M3 block scales
    w[1, 16:32] = torch.randn(16, generator=g) * 3e-5
    w[2, :16] = -torch.rand(16, generator=g) * 0.02   # small negatives next to a large one: codes round to -0
    w[2, 0] = -3.0
    w[3, 5] = 8.0                                     # the tensor's amax
    return w


def dequant_fixtures():
    g = torch.Generator().manual_seed(7)
    t = {}
    for case in range(2):
        w = special_matrix(g) if case == 0 else torch.randn(8, 48, generator=g) * 0.1
        mo, mo_deq = qp.modelopt_nvfp4(w)
        for k, v in mo.items():
            t[f"mo{case}.{k}"] = v
        t[f"mo{case}.expected"] = mo_deq.contiguous()
        ct, ct_deq = qp.ct_nvfp4(w)
        for k, v in ct.items():
            t[f"ct{case}.{k}"] = v
        t[f"ct{case}.expected"] = ct_deq.contiguous()
    os.makedirs(NV, exist_ok=True)
    save_file(t, os.path.join(NV, "dequant.safetensors"), metadata={"format": "pt"})

    f = {}
    w = special_matrix(g)[:, :48].contiguous()
    w[4, 3] = 1e-4  # subnormal E4M3 codes
    mo, mo_deq = qp.modelopt_fp8(w)
    for k, v in mo.items():
        f[f"mo.{k}"] = v
    f["mo.expected"] = mo_deq.contiguous()
    for name, dt in (("ct", torch.float32), ("ctbf", torch.bfloat16)):
        ct, ct_deq = qp.ct_fp8_channel(w, dt)
        for k, v in ct.items():
            f[f"{name}.{k}"] = v
        f[f"{name}.expected"] = ct_deq.contiguous()
    os.makedirs(F8, exist_ok=True)
    save_file(f, os.path.join(F8, "dequant.safetensors"), metadata={"format": "pt"})
    print("dequant fixtures written")


def rope(theta):
    return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}


ARCH = {
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=256, rms_norm_eps=1e-6,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, **rope(1000000.0))),
    "llama": (LlamaConfig, LlamaForCausalLM, dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, **rope(10000.0))),
}
GROUPS = [("q_proj", "k_proj", "v_proj"), ("o_proj",), ("gate_proj", "up_proj"), ("down_proj",)]


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() == 1:
            p.copy_(0.5 + torch.rand(p.shape, generator=g))
        elif "embed_tokens" in name:
            p.copy_(torch.randn(p.shape, generator=g))
        else:
            gain = 2.0 if ("q_proj" in name or "k_proj" in name) else 1.0
            p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(p.shape[1]))


def logits(model):
    def run(ids, past=None):
        out = model(input_ids=torch.tensor([ids]), past_key_values=past, use_cache=True)
        return out.logits[0].float().numpy(), out.past_key_values
    a, past = run(TOKENS)
    b, _ = run(CONTINUATION, past)
    return np.concatenate([a, b], axis=0)


def quantize_group(scheme, ws):
    """One fused group's tensors and dequantized weights, sharing the per-tensor scale as the producers do."""
    if scheme == "mo_nvfp4":
        s2 = qp.modelopt_scale_2(ws)
        return [qp.modelopt_nvfp4(w, s2) for w in ws]
    if scheme == "ct_nvfp4":
        gs = qp.ct_global_scale(ws)
        return [qp.ct_nvfp4(w, gs) for w in ws]
    if scheme == "mo_fp8":  # per tensor, each its own scale (vLLM requantizes to the max; imp keeps per-row)
        return [qp.modelopt_fp8(w) for w in ws]
    if scheme == "ct_fp8":
        return [qp.ct_fp8_channel(w, torch.bfloat16) for w in ws]
    raise ValueError(scheme)


def make_model(root, name, arch, seed, scheme_of, qconfig, hf_quant=None, input_scales=()):
    """scheme_of(module) -> quantization scheme name or None (kept fp32)."""
    cfg_cls, model_cls, kw = ARCH[arch]
    torch.manual_seed(seed)
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).float().eval()
    randomize(model, seed)
    sd = model.state_dict()
    tensors, modules = {}, []
    for layer in range(cfg.num_hidden_layers):
        for group in GROUPS:
            part = "self_attn" if group[0] in ("q_proj", "o_proj") else "mlp"
            mods = [f"model.layers.{layer}.{part}.{p}" for p in group]
            modules.append(mods)
    modules.append(["lm_head"])
    for mods in modules:
        scheme = scheme_of(mods[0])
        if scheme is None:
            continue
        outs = quantize_group(scheme, [sd[m + ".weight"] for m in mods])
        for m, (t, deq) in zip(mods, outs):
            for k, v in t.items():
                tensors[f"{m}.{k}"] = v.clone()
            for k in input_scales:  # activation scales as the W4A4 / W8A8 producers write them (ignored by imp)
                tensors[f"{m}.{k}"] = torch.tensor(0.05 if k == "input_scale" else 20.0).reshape(
                    [] if k == "input_scale" else [1])
            sd[m + ".weight"].copy_(deq)
    quantized = {m for mods in modules for m in mods if scheme_of(mods[0])}
    for k, v in sd.items():
        if k.endswith(".weight") and k[:-7] in quantized:
            continue
        tensors[k] = v.contiguous()
    ref = logits(model)

    d = os.path.join(root, "models", name)
    os.makedirs(d, exist_ok=True)
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    c = cfg.to_dict()
    c["quantization_config"] = qconfig
    c.pop("_attn_implementation_autoset", None)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    if hf_quant:
        with open(os.path.join(d, "hf_quant_config.json"), "w") as f:
            json.dump(hf_quant, f, indent=1)
    ref.astype("<f4").tofile(os.path.join(d, "reference_logits.f32"))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"tokens": TOKENS, "continuation": CONTINUATION, "n_vocab": int(cfg.vocab_size),
                   "logits_file": "reference_logits.f32", "logits_shape": list(ref.shape), "seed": seed,
                   "note": "transformers fp32 logits on the producers' dequantized weights",
                   "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}, f, indent=1)
    print(f"{name}: {len(tensors)} tensors, max|logit| {np.abs(ref).max():.3f}")


def make_moe(root, name, seed):
    """Tiny Qwen3-MoE, ModelOpt NVFP4 on attention and every expert (per-expert tensors as the quantized checkpoints
    store them; an expert's gate and up share weight_scale_2), router and lm_head excluded."""
    torch.manual_seed(seed)
    cfg = Qwen3MoeConfig(vocab_size=256, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                         num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                         rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                         **rope(1000000.0))
    cfg._attn_implementation = "eager"
    model = Qwen3MoeForCausalLM(cfg).float().eval()
    randomize(model, seed)
    sd = model.state_dict()
    tensors = {}

    def put(module, t):
        for k, v in t.items():
            tensors[f"{module}.{k}"] = v.clone()
        tensors[f"{module}.input_scale"] = torch.tensor(0.05)

    inter = cfg.moe_intermediate_size
    for layer in range(cfg.num_hidden_layers):
        p = f"model.layers.{layer}."
        for group in (("q_proj", "k_proj", "v_proj"), ("o_proj",)):
            mods = [p + "self_attn." + g for g in group]
            for m, (t, deq) in zip(mods, quantize_group("mo_nvfp4", [sd[m + ".weight"] for m in mods])):
                put(m, t)
                sd[m + ".weight"].copy_(deq)
        gu, down = sd[p + "mlp.experts.gate_up_proj"], sd[p + "mlp.experts.down_proj"]
        for e in range(cfg.num_experts):
            x = f"{p}mlp.experts.{e}."
            (tg, dg), (tu, du) = quantize_group("mo_nvfp4", [gu[e, :inter].clone(), gu[e, inter:].clone()])
            td, dd = qp.modelopt_nvfp4(down[e].clone())
            put(x + "gate_proj", tg)
            put(x + "up_proj", tu)
            put(x + "down_proj", td)
            gu[e, :inter].copy_(dg)
            gu[e, inter:].copy_(du)
            down[e].copy_(dd)
    for k, v in sd.items():
        if k.endswith(("gate_up_proj", "down_proj")) and ".experts." in k:
            continue
        if "self_attn" in k and k.endswith("_proj.weight"):
            continue
        tensors[k] = v.contiguous()
    model.load_state_dict(sd)
    ref = logits(model)
    d = os.path.join(root, "models", name)
    os.makedirs(d, exist_ok=True)
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    producer = {"name": "modelopt", "version": MO_VERSION}
    c = cfg.to_dict()
    c.pop("_attn_implementation_autoset", None)
    c["quantization_config"] = {"quant_method": "modelopt", "quant_algo": "NVFP4", "producer": producer,
                                "config_groups": mo_groups(4, {"group_size": 16}),
                                "ignore": ["lm_head", "model.layers.*.mlp.gate"]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    with open(os.path.join(d, "hf_quant_config.json"), "w") as f:
        json.dump({"producer": producer, "quantization": {"quant_algo": "NVFP4", "group_size": 16,
                                                          "exclude_modules": ["lm_head", "model.layers.*.mlp.gate"]}},
                  f, indent=1)
    ref.astype("<f4").tofile(os.path.join(d, "reference_logits.f32"))
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"tokens": TOKENS, "continuation": CONTINUATION, "n_vocab": int(cfg.vocab_size),
                   "logits_file": "reference_logits.f32", "logits_shape": list(ref.shape), "seed": seed,
                   "note": "transformers fp32 logits on the producers' dequantized weights",
                   "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}, f, indent=1)
    print(f"{name}: {len(tensors)} tensors, max|logit| {np.abs(ref).max():.3f}")


def mo_groups(bits, extra=None):
    w = {"dynamic": False, "num_bits": bits, "type": "float"}
    if extra:
        w.update(extra)
    return {"group_0": {"weights": w, "input_activations": dict(w), "targets": ["Linear"]}}


def main():
    torch.set_grad_enabled(False)
    dequant_fixtures()
    producer = {"name": "modelopt", "version": MO_VERSION}

    # ModelOpt NVFP4 (W4A4 export: input_scale present, ignored by imp), lm_head excluded.
    hq = {"producer": producer, "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None,
                                                 "group_size": 16, "exclude_modules": ["lm_head"]}}
    make_model(NV, "qwen3_nvfp4_modelopt", "qwen3", 31, lambda m: None if m == "lm_head" else "mo_nvfp4",
               {"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_scheme": None,
                "config_groups": mo_groups(4, {"group_size": 16}), "ignore": ["lm_head"], "producer": producer},
               hq, input_scales=("input_scale",))

    # compressed-tensors nvfp4-pack-quantized, preset NVFP4 (W4A4: input_global_scale), lm_head NVFP4 too.
    ct_w = {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": True,
            "dynamic": False, "scale_dtype": "torch.float8_e4m3fn"}
    ct_a = dict(ct_w, dynamic="local")
    make_model(NV, "llama_nvfp4_ct", "llama", 32, lambda m: "ct_nvfp4",
               {"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
                "quantization_status": "compressed",
                "config_groups": {"group_0": {"targets": ["Linear"], "weights": ct_w, "input_activations": ct_a,
                                              "format": "nvfp4-pack-quantized"}},
                "ignore": ["re:.*mlp.gate$"]},
               input_scales=("input_global_scale",))

    # ModelOpt MIXED_PRECISION as nvidia/Qwen3.6-35B-A3B-NVFP4: attention FP8 per tensor (with input_scale), MLP
    # and lm_head W4A16_NVFP4; quantized_layers keyed with the multimodal prefix model.language_model.
    layers = {}
    for layer in range(2):
        for p in ("q_proj", "k_proj", "v_proj", "o_proj"):
            layers[f"model.language_model.layers.{layer}.self_attn.{p}"] = {"quant_algo": "FP8"}
        for p in ("gate_proj", "up_proj", "down_proj"):
            layers[f"model.language_model.layers.{layer}.mlp.{p}"] = {"quant_algo": "W4A16_NVFP4", "group_size": 16}
    layers["lm_head"] = {"quant_algo": "W4A16_NVFP4", "group_size": 16}
    hq = {"producer": producer, "quantization": {"quant_algo": "MIXED_PRECISION", "kv_cache_quant_algo": "FP8",
                                                 "quantized_layers": layers,
                                                 "exclude_modules": ["*mlp.gate", "*visual*", "mtp*"]}}
    make_model(NV, "qwen3_mixed_modelopt", "qwen3", 33,
               lambda m: "mo_fp8" if "self_attn" in m else "mo_nvfp4",
               {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "producer": producer,
                "quantized_layers": layers}, hq)

    make_moe(NV, "qwen3moe_nvfp4_modelopt", 36)

    # FP8: ModelOpt per tensor (input_scale kept), compressed-tensors per channel with BF16 scales.
    hq = {"producer": producer, "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None,
                                                 "exclude_modules": ["lm_head"]}}
    make_model(F8, "qwen3_fp8_modelopt", "qwen3", 34, lambda m: None if m == "lm_head" else "mo_fp8",
               {"quant_method": "modelopt", "quant_algo": "FP8", "config_groups": mo_groups(8),
                "ignore": ["lm_head"], "producer": producer}, hq, input_scales=("input_scale",))
    make_model(F8, "llama_fp8_ct", "llama", 35, lambda m: None if m == "lm_head" else "ct_fp8",
               {"quant_method": "compressed-tensors", "format": "float-quantized",
                "quantization_status": "compressed",
                "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                    "num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False},
                    "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}}},
                "ignore": ["lm_head"]})


if __name__ == "__main__":
    main()
