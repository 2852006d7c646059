"""The producers' own quantize / pack / dequantize functions for NVFP4 and FP8 weights, one call each.

Imported by make_quant_fixtures.py. Needs nvidia-modelopt and compressed-tensors (PyPI) on top of torch; every byte
written and every expected value comes from their functions:
  ModelOpt:          NVFP4QTensor.quantize / .dequantize (modelopt.torch.quantization.qtensor), FP8: x / scale cast
                     to float8_e4m3fn with scale = amax / 448 (FP8QTensor.quantize's formula, per tensor)
  compressed-tensors: generate_gparam, calculate_qparams, NVFP4PackedCompressor.compress, unpack_fp4_from_uint8,
                     forward.quantize / dequantize (compressed_tensors.quantization), presets NVFP4A16 / FP8.
Dequantization is evaluated in fp32 (compressed-tensors' own decompress rounds to bf16 by default; its arithmetic
in fp32 is what imp reproduces).
"""
import torch
from compressed_tensors.compressors.nvfp4.base import NVFP4PackedCompressor
from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.lifecycle.forward import dequantize, quantize
from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
from compressed_tensors.quantization.utils.helpers import calculate_qparams, generate_gparam
from modelopt.torch.quantization.qtensor.fp8_tensor import FP8QTensor
from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor


def modelopt_nvfp4(w, scale_2=None):
    """-> dict of ModelOpt tensors (weight U8, weight_scale F8_E4M3, weight_scale_2 F32 scalar), dequantized fp32."""
    if scale_2 is None:
        scale_2 = NVFP4QTensor.get_weights_scaling_factor_2(w)
    qt, scale, scale_2 = NVFP4QTensor.quantize(w, 16, weights_scaling_factor_2=scale_2)
    deq = qt.dequantize(dtype=torch.float32, scale=scale, double_scale=scale_2, block_sizes={-1: 16})
    t = {"weight": qt._quantized_data.contiguous(), "weight_scale": scale.contiguous(),
         "weight_scale_2": scale_2.reshape([]).float().contiguous()}
    return t, deq


def modelopt_scale_2(ws):
    """The shared per-tensor scale of a fused group (q/k/v, gate/up): the group's amax / (6 * 448)."""
    return max(float(w.abs().max()) for w in ws) / (6.0 * 448.0) * torch.ones(())


def ct_nvfp4(w, global_scale=None):
    """-> dict of compressed-tensors tensors (weight_packed, weight_scale, weight_global_scale), dequantized fp32."""
    scheme = preset_name_to_scheme("NVFP4A16", ["Linear"])
    args = scheme.weights
    if global_scale is None:
        global_scale = generate_gparam(w.min(), w.max())
    rows, cols = w.shape
    g = w.reshape(rows, cols // 16, 16)
    scale, _ = calculate_qparams(g.amin(-1), g.amax(-1), args, global_scale=global_scale)
    sd = NVFP4PackedCompressor.compress({"weight": w, "weight_scale": scale, "weight_global_scale": global_scale},
                                        scheme)
    packed, scale8 = sd["weight_packed"], sd["weight_scale"]
    x_q = unpack_fp4_from_uint8(packed, rows, cols, dtype=torch.float32)
    deq = dequantize(x_q=x_q, scale=scale8.to(torch.float32), args=args, global_scale=global_scale,
                     dtype=torch.float32)
    t = {"weight_packed": packed.contiguous(), "weight_scale": scale8.contiguous(),
         "weight_global_scale": global_scale.reshape([1]).float().contiguous()}
    return t, deq


def ct_global_scale(ws):
    """llm-compressor's fused-group global scale: the smallest of the group's (its largest amax)."""
    return min(generate_gparam(w.min(), w.max()) for w in ws)


def modelopt_fp8(w, scale=None):
    """ModelOpt FP8 per tensor: weight F8_E4M3, weight_scale F32 scalar; dequantized fp32."""
    qt, scale = FP8QTensor.quantize(w, scales=scale)
    q = qt._quantized_data
    deq = qt.dequantize(dtype=torch.float32, scale=scale)
    return {"weight": q.contiguous(), "weight_scale": scale.reshape([]).float().contiguous()}, deq


def ct_fp8_channel(w, scale_dtype=torch.float32):
    """compressed-tensors float-quantized, per output channel: weight F8_E4M3, weight_scale [out, 1]."""
    args = QuantizationArgs(num_bits=8, type="float", strategy="channel", symmetric=True, dynamic=False)
    scale, zp = calculate_qparams(w.amin(-1, keepdim=True), w.amax(-1, keepdim=True), args)
    scale = scale.to(scale_dtype)
    q = quantize(x=w, scale=scale, zero_point=None, args=args, dtype=torch.float8_e4m3fn)
    deq = dequantize(x_q=q, scale=scale.to(torch.float32), args=args, dtype=torch.float32)
    return {"weight": q.contiguous(), "weight_scale": scale.contiguous()}, deq
