// imp SDK: stacked expert weights for mixture-of-experts layers. An ExpertWeights holds n_expert matrices of one
// shape [rows, cols] in one allocation (from a GGUF 3-D tensor [n_expert, rows, cols], an HF fused 3-D tensor, or
// per-expert 2-D tensors gathered at load) and multiplies each token by the experts a router picked for it, reading
// the expert ids and routing weights from device memory: no host synchronisation, so a decode step that calls it
// can be captured in a graph and replayed with other ids.
#pragma once
#include <cstdint>
#include <string>

namespace imp {

class Executor;
class Weight;

// One grouped matmul over n_tokens tokens, each routed to top_k experts.
//   weights == nullptr: y[t * top_k + j, r] (+)= sum_c x_row(t, j)[c] * W[ids[t * top_k + j]][r, c]
//                       (one output row per (token, slot); y has n_tokens * top_k rows)
//   weights != nullptr: y[t, r] (+)= sum_j weights[t * top_k + j] * sum_c x_row(t, j)[c] * W[ids[t * top_k + j]][r, c]
//                       (the weighted sum over the slots; y has n_tokens rows)
// x_row(t, j) is row t of x when !x_per_slot, else row t * top_k + j (e.g. the down projection reads the
// activation of each (token, slot)). With x_swiglu, x_row(t, j) holds [gate | up] (2 cols floats) and the matmul's
// input is silu(gate) * up, silu(g) = g / (1 + exp(-g)): the SwiGLU of the MoE block folded into the down
// projection (only for weights whose swiglu_input() is true). An id outside [0, n_expert) contributes nothing (its
// output row is zero, or left as is when accumulating); ids, weights, x and y live on the executor's device.
// Accumulates in fp32.
struct ExpertMatmul {
    const float* x = nullptr;
    int64_t x_stride = 0;     // floats between rows of x
    bool x_per_slot = false;  // x has n_tokens * top_k rows
    const int32_t* ids = nullptr;      // [n_tokens, top_k] expert ids
    const float* weights = nullptr;    // [n_tokens, top_k] routing weights, or null
    int64_t n_tokens = 0;
    int64_t top_k = 1;
    float* y = nullptr;
    int64_t y_stride = 0;     // floats between rows of y
    bool accumulate = false;  // y += result instead of y = result
    bool x_swiglu = false;    // x rows are [gate | up]: the input is silu(gate) * up (see above)
    // One more slot per token on a dense weight of one expert's shape (the MoE block's shared expert), only where
    // this weight's takes_extra(*extra, n_tokens, top_k) is true: unweighted, slot top_k of token t writes row
    // n_tokens * top_k + t of y (y has n_tokens * (top_k + 1) rows); weighted, y[t] gets extra_weights[t] (1 where
    // null) times it added to the slots' sum. Its x_row is row t of x, or row n_tokens * top_k + t when x_per_slot.
    const Weight* extra = nullptr;
    const float* extra_weights = nullptr;  // [n_tokens], or null
};

class ExpertWeights {
public:
    virtual ~ExpertWeights() = default;
    int64_t n_expert() const { return n_expert_; }
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    virtual std::string type() const = 0;  // storage type name, e.g. "Q4_K"
    virtual uint64_t bytes() const = 0;    // device bytes held
    virtual void grouped_matmul(Executor& ex, const ExpertMatmul& m) const = 0;
    // Bytes of the executor's shared workspace a grouped matmul over n_tokens tokens and top_k slots needs.
    virtual uint64_t workspace_bytes(int64_t n_tokens, int64_t top_k) const {
        (void)n_tokens;
        (void)top_k;
        return 0;
    }
    // Whether the MoE block should give this weight its [gate | up] rows with ExpertMatmul::x_swiglu instead of
    // applying SwiGLU itself (the weight's kernels fold it in and its settings ask for it).
    virtual bool swiglu_input() const { return false; }
    // Whether a grouped matmul of n_tokens tokens and top_k slots can take `w` as ExpertMatmul::extra (one more
    // slot per token in the same launches: same format and layout as one expert, a decode-sized call).
    virtual bool takes_extra(const Weight& w, int64_t n_tokens, int64_t top_k) const {
        (void)w;
        (void)n_tokens;
        (void)top_k;
        return false;
    }

protected:
    int64_t n_expert_ = 0, rows_ = 0, cols_ = 0;
};

}  // namespace imp
