// The Gated DeltaNet ops (Qwen3-Next / Qwen3.5 / Qwen3.6 linear-attention layers), registered by arch_gdn with
// register_gdn_ops(): a CPU reference (gdn_*_cpu.cpp) and a CUDA kernel (*.cu, sm_90a) each, and a conformance check.
// The layer calls them in this order for one GDN layer (projections are matmuls of the layer's own):
//   gdn.conv         q|k|v projections -> causal depthwise conv (K taps) + SiLU, q and k heads L2-normalized, and the
//                    gates g = -exp(A_log) * softplus(a + dt_bias), beta = sigmoid(b); rolling conv state per slot
//   gdn.rule_decode  gated delta rule, one token per sequence (every sequence a decode row)
//   gdn.rule_chunked gated delta rule over any rows (prefill: chunk 64, WY/UT form, tensor cores on CUDA)
//   gdn.gated_norm   y = RMSNorm(o per v-head; w) * silu(z), the input of out_proj
//   gdn.decode_step  decode steps: gdn.conv + gdn.rule_decode + the gated norm as one op (one CUDA kernel)
// Conventions (every pointer is executor memory; activations fp32, token-major, row stride in floats):
//   Dims: Hk key heads of dk, Hv value heads of dv (Hv a multiple of Hk: grouped value attention, GVA);
//   key_dim = Hk*dk, value_dim = Hv*dv, conv_dim = 2*key_dim + value_dim. Value head j reads key head
//   j / (Hv/Hk) (HF, qwen3next GGUF: repeat_interleave) or, when Dims::tiled, j % Hk (qwen35 GGUF v-head order).
//   Step rows are grouped by sequence as in imp::StepBatch: sequence s owns rows [qsl[s], qsl[s+1]) and its
//   recurrent state lives in slot state_slots[s].
//   Conv state of a slot: [K-1, conv_dim] fp32, row 0 the oldest input (a zeroed slot = a fresh sequence).
//   Delta-rule state of a slot: [Hv, dv, dk] fp32, i.e. per v-head S^T of HF's S [dk, dv]: S[i][j] (key i,
//   value j) at state[(h*dv + j)*dk + i] (each value column's key vector contiguous: coalesced decode).
// The recurrence per v-head h and token t (HF torch_recurrent_gated_delta_rule, q and k L2-normalized, scale on q):
//   S = S*exp(g_t); kv = S^T k_t; delta = beta_t*(v_t - kv); S += k_t delta^T; o_t = S^T (scale*q_t).
#pragma once
#include <cstdint>
#include <string>

#include "imp/executor.h"
#include "imp/registry.h"

namespace imp::gdn {

// (constexpr members: callable from CUDA kernels, which take Dims by value.)
struct Dims {
    int n_k_heads = 0;   // Hk
    int n_v_heads = 0;   // Hv (multiple of Hk)
    int head_k_dim = 0;  // dk
    int head_v_dim = 0;  // dv
    bool tiled = false;  // v-head j reads k-head j % Hk (qwen35 GGUF); false: j / (Hv / Hk) (HF, qwen3next GGUF)
    constexpr int64_t key_dim() const { return int64_t(n_k_heads) * head_k_dim; }
    constexpr int64_t value_dim() const { return int64_t(n_v_heads) * head_v_dim; }
    constexpr int64_t conv_dim() const { return 2 * key_dim() + value_dim(); }
    constexpr int k_head_of(int j) const { return tiled ? j % n_k_heads : j / (n_v_heads / n_k_heads); }
};

// The sequences of one step (the fields of imp::StepBatch the ops read; seqs_of(batch) fills them).
struct Seqs {
    int64_t n_tokens = 0;                      // host: rows of the step
    int32_t n_seqs = 0;                        // host
    const int32_t* query_start_loc = nullptr;  // [n_seqs + 1] device
    const int32_t* token_seq = nullptr;        // [n_tokens] device: sequence of each row
    const int32_t* state_slots = nullptr;      // [n_seqs] device: state slot of each sequence
    int32_t max_query_len = 0;                 // host: most rows of one sequence (kernel choice)
};
inline Seqs seqs_of(const StepBatch& b) {
    return {b.n_tokens, b.n_seqs, b.query_start_loc, b.token_seq, b.state_slots, b.max_query_len};
}

// gdn.conv: for every row t of sequence s and channel c < conv_dim,
//   y[t, c] = silu(sum_{j<K} w[c, j] * x_s[pos(t) - (K-1) + j, c])
// where x_s is the sequence's inputs preceded by the K-1 inputs kept in its conv state; then each q head
// (channels [h*dk, (h+1)*dk)) and each k head (key_dim + ...) of y is L2-normalized: y * rsqrt(sum y^2 + l2_eps);
// v channels are left as they are. The conv state of slot state_slots[s] is left holding the last K-1 inputs.
// Gates per row and v-head j: beta = sigmoid(b[t, j]);
//   g = -exp(A[j]) * softplus(a[t, j] + dt_bias[j])   when A_is_log (HF A_log),
//   g = A[j] * softplus(a[t, j] + dt_bias[j])         otherwise (GGUF ssm_a, which stores -exp(A_log)).
// softplus(x) = log(1 + exp(x)) (x for x > 20, as torch). out may not alias x.
struct Conv {
    static constexpr const char* name = "gdn.conv";
    struct Args {
        Dims dims;
        Seqs seqs;
        int kernel = 4;                 // K taps (2..8)
        const float* x = nullptr;       // [n_tokens, conv_dim] q|k|v projections, row stride x_stride
        int64_t x_stride = 0;
        const float* w = nullptr;       // [conv_dim, K] (HF conv1d.weight [conv_dim, 1, K]; GGUF ssm_conv1d)
        float* conv_state = nullptr;    // slot s at conv_state + s * state_stride: [K-1, conv_dim] fp32
        int64_t state_stride = 0;       // floats between slots (StateView::slot_bytes / 4)
        float* out = nullptr;           // [n_tokens, conv_dim] q|k|v, row stride out_stride
        int64_t out_stride = 0;
        float l2_eps = 1e-6f;
        const float* b = nullptr;       // [n_tokens, Hv], row stride b_stride
        int64_t b_stride = 0;
        const float* a = nullptr;       // [n_tokens, Hv], row stride a_stride
        int64_t a_stride = 0;
        const float* A = nullptr;       // [Hv]
        bool A_is_log = true;
        const float* dt_bias = nullptr; // [Hv]
        float* g = nullptr;             // [n_tokens, Hv] contiguous
        float* beta = nullptr;          // [n_tokens, Hv] contiguous
        // CUDA kernel: 0 auto (steps with several rows per sequence: one warp per (head, 16 rows) sliding the window
        // along the rows with 16-byte accesses, when x, out, the conv state and their strides are 16-byte aligned,
        // head dims <= 128 and multiples of 4; else 1), 1 one block per (row, head) (ignored elsewhere).
        int variant = 0;
    };
};

// The two delta-rule ops share their arguments. qkv is gdn.conv's output (q and k heads L2-normalized):
// row t holds q (key_dim), k (key_dim), v (value_dim). o[t, j*dv + d] is the output of v-head j. The state of
// slot state_slots[s] is read as sequence s's initial state and left holding its final state.
struct RuleArgs {
    Dims dims;
    Seqs seqs;
    const float* qkv = nullptr;  // [n_tokens, conv_dim], row stride qkv_stride
    int64_t qkv_stride = 0;
    const float* g = nullptr;     // [n_tokens, Hv] (log decay, <= 0)
    const float* beta = nullptr;  // [n_tokens, Hv]
    float* state = nullptr;       // slot s at state + s * state_stride: [Hv, dv, dk] fp32
    int64_t state_stride = 0;     // floats between slots
    float* o = nullptr;           // [n_tokens, value_dim], row stride o_stride
    int64_t o_stride = 0;
    float scale = 0.f;            // applied to q (1/sqrt(dk))
    // gdn.rule_chunked on CUDA only (ignored elsewhere): device scratch for its two-kernel path (a chunk-parallel
    // prep kernel, then the sequential state kernel), at least rule_chunked_workspace_bytes(dims, n_tokens) bytes,
    // 16-byte aligned; and the kernel variant: 0 auto (split when the workspace is there, 32 value columns per
    // block when few blocks would run), 1 fused single kernel (no workspace), 2 split with 64 columns, 3 split with 32,
    // 4 split with 32 and the prep kernel on mma.sync, 5 / 6 both split kernels on mma.sync with 32 / 64 columns.
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    int variant = 0;
    // gdn.rule_decode only: when norm_w is set, o receives gdn.gated_norm's y of the rule's output instead (RMSNorm
    // per v-head with norm_w and norm_eps, then * silu(z)), computed in the same kernel on CUDA, whose warps per
    // v-head are `variant` (0 = 8; 8, 16 or 32; others an error).
    const float* norm_w = nullptr;  // [dv]
    const float* z = nullptr;       // [n_tokens, value_dim], row stride z_stride
    int64_t z_stride = 0;
    float norm_eps = 1e-6f;
    // gdn.rule_decode with norm_w on CUDA: CTAs per v-head (1; or 2, 4, 8: a thread-block cluster splitting the
    // head's value columns, the norm's sum of squares shared through distributed shared memory; cc 9.0).
    int decode_ctas = 1;
};

// Workspace bytes of gdn.rule_chunked's split CUDA path for a step of n_tokens rows (n_tokens * Hv * 1152).
size_t rule_chunked_workspace_bytes(const Dims& d, int64_t n_tokens);

// gdn.rule_decode: one row per sequence (n_tokens == n_seqs, row s belongs to sequence s).
// Within a step, no other kernel writes the layer's recurrent state (new sequences' slots are zeroed and forks copied
// before the step's first kernel): the CUDA kernel starts reading it before it waits for the kernel before it.
struct RuleDecode {
    static constexpr const char* name = "gdn.rule_decode";
    using Args = RuleArgs;
};

// gdn.rule_chunked: any rows (sequences of 1..n tokens). Same result as the token-by-token recurrence; the CUDA
// kernel computes it in chunks of 64 rows with bf16 tensor-core products and fp32 accumulation and state.
struct RuleChunked {
    static constexpr const char* name = "gdn.rule_chunked";
    using Args = RuleArgs;
};

// gdn.decode_step: a decode step of the GDN mixer after its projections, one row per sequence (n_tokens == n_seqs):
// gdn.conv (conv), then gdn.rule_decode with the gated norm (rule: norm_w and z required) on its outputs. The result
// is exactly that of the two ops in a row: o, both states. conv.out, conv.g and conv.beta are scratch: the CPU
// reference writes the conv outputs and gates there for the rule; the CUDA kernel keeps them on chip and leaves them
// untouched. rule.qkv, rule.g and rule.beta are ignored; conv.dims and conv.seqs serve for both.
// CUDA (cc 9.0): one thread-block cluster per (sequence, k-head) of (Hv / Hk) x rule.decode_ctas CTAs, at most 8,
// each CTA convolving its k-head's q and k and its own value columns (no conv kernel, no q|k|v round trip);
// rule.variant as in gdn.rule_decode (warps per CTA).
struct DecodeStep {
    static constexpr const char* name = "gdn.decode_step";
    static constexpr int kMaxCluster = 8;  // CUDA: (Hv / Hk) x decode_ctas may not exceed it (portable cluster size)
    struct Args {
        Conv::Args conv;
        RuleArgs rule;
    };
};

// gdn.gated_norm: y[t, h*hd + d] = x[t, h*hd + d] * rsqrt(mean_d x[t, h*hd + d]^2 + eps) * w[d] * silu(z[t, h*hd + d])
// for every head h < n_heads (y may equal x).
struct GatedNorm {
    static constexpr const char* name = "gdn.gated_norm";
    struct Args {
        const float* x = nullptr;  // [n_tokens, n_heads * head_dim], row stride x_stride
        int64_t x_stride = 0;
        const float* z = nullptr;  // same shape, row stride z_stride
        int64_t z_stride = 0;
        const float* w = nullptr;  // [head_dim]
        float* y = nullptr;        // same shape, row stride y_stride
        int64_t y_stride = 0;
        int64_t n_tokens = 0;
        int n_heads = 0;
        int head_dim = 0;
        float eps = 1e-6f;
        // CUDA kernel: 0 auto (one warp per (row, head) with 16-byte accesses when x, z, w, y and the strides are
        // 16-byte aligned and head_dim is a multiple of 4 up to 512; else 1), 1 one block per (row, head).
        int variant = 0;
    };
};

// Registers the five ops (CPU and CUDA kernels) and their conformance checks.
void register_gdn_ops(Registry& reg);

}  // namespace imp::gdn
