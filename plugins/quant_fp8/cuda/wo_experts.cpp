// Weight-only CUDA weights: the ExpertWeights (wo_weight.h). grouped_matmul takes one of two paths, chosen on the
// host from the shapes only (never from ids): with at most as many (token, slot) pairs as experts (decode), one
// GEMV work item per pair, reading its expert id on the device; with more (prefill), one CTA sorts the pairs by
// expert into the workspace and each work item runs the 8-token GEMV on up to 8 pairs of one expert, so an expert's
// weights are read once per 8 pairs routed to it. No host sync either way (graph-capturable). With routing weights
// the pairs' rows go to the workspace and a second kernel sums the slots of each token in slot order
// (deterministic). With the setting experts_gemm, the prefill path runs the tensor-core GEMM (wo_experts_gemm.cu) on
// groups of up to 8 * nt pairs instead of the GEMV. With experts_fused_down the weight asks the MoE block for its
// [gate | up] rows (swiglu_input): a weighted decode call is one kernel (wo_moe_down.cu), the GEMM applies SwiGLU as
// it stages the rows, the GEMV paths read them from a SwiGLU pass into the workspace. With experts_swiglu the weight
// asks for them too and the ungrouped (decode) GEMV stages silu(gate) * up in each CTA (no SwiGLU kernel). Nothing
// allocates device memory after load.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "imp/error.h"
#include "wo_kernels.h"
#include "wo_weight.h"

namespace imp::wo {
namespace {

const char* codec_name(Codec c) {
    return c == Codec::NVFP4 ? "NVFP4" : "FP8_E4M3";
}

class WoExperts final : public ExpertWeights {
public:
    WoExperts(std::string name, const Layout& l, int64_t n_expert, uint8_t* dev, const Options& o, int gemm_nt_max)
        : name_(std::move(name)), l_(l), dev_(dev), o_(o), gemm_nt_max_(gemm_nt_max) {
        n_expert_ = n_expert;
        rows_ = l.rows;
        cols_ = l.cols;
    }
    std::string type() const override { return codec_name(l_.codec); }
    uint64_t bytes() const override { return uint64_t(n_expert_) * l_.bytes; }

    // The pairs' rows of a weighted call, the grouping and (swiglu_input) the pairs' SwiGLU rows (whether or not a
    // given call needs them: the engine reserves the maximum once).
    // (The pairs' rows: one more per token for an ExpertMatmul::extra slot.)
    uint64_t workspace_bytes(int64_t n_tokens, int64_t top_k) const override {
        if (n_tokens <= 0 || top_k <= 0) return 0;
        const int64_t n_pairs = n_tokens * top_k;
        return part_bytes(n_pairs + n_tokens) + (grouped_ok() ? group_bytes(n_pairs) : 0) +
               act_bytes(n_pairs + n_tokens);
    }

    bool swiglu_input() const override { return o_.experts_fused_down || o_.experts_swiglu; }

    // The extra slot rides the ungrouped GEMV (decode: at most n_expert pairs), one more work item per token, or the
    // fused down projection, one more slot per token, on a dense weight of this plugin with one expert's layout.
    bool takes_extra(const Weight& w, int64_t n_tokens, int64_t top_k) const override {
        if (n_tokens <= 0 || top_k <= 0) return false;
        const int64_t n_pairs = n_tokens * top_k;
        if (n_pairs > n_expert_) return false;  // decode-sized calls only (prefill: the grouped path or many GEMVs)
        return n_pairs + n_tokens <= INT32_MAX / 4 && gemv_matrix(w, l_) != nullptr;
    }

    void grouped_matmul(Executor& ex, const ExpertMatmul& m) const override {
        const CudaHandles& h = cuda_handles(ex, "experts '" + name_ + "'");
        if (m.n_tokens <= 0) return;
        const std::string what = "experts '" + name_ + "': grouped_matmul";
        if (m.top_k <= 0) throw Error(what + ": top_k " + std::to_string(m.top_k) + " is not positive");
        if (!m.x || !m.ids || !m.y) throw Error(what + ": x, ids and y must not be null");
        const int64_t n_pairs = m.n_tokens * m.top_k;
        const int64_t extra_rows = m.extra ? m.n_tokens : 0;  // the extra slot's x rows (per slot) and y rows
        const int64_t x_rows = m.x_per_slot ? n_pairs + extra_rows : m.n_tokens;
        const int64_t y_rows = m.weights ? m.n_tokens : n_pairs + extra_rows;
        const int64_t x_cols = m.x_swiglu ? 2 * cols_ : cols_;
        if ((x_rows > 1 && m.x_stride < x_cols) || (y_rows > 1 && m.y_stride < rows_))
            throw Error(what + ": strides x " + std::to_string(m.x_stride) + ", y " + std::to_string(m.y_stride) +
                        " are below " + (m.x_swiglu ? "2 x " : "") + "cols " + std::to_string(cols_) + ", rows " +
                        std::to_string(rows_));
        if (n_pairs > INT32_MAX / 4) throw Error(what + ": " + std::to_string(n_pairs) + " (token, slot) pairs");
        const bool weighted = m.weights != nullptr, grouped = grouped_ok() && n_pairs > n_expert_;
        const uint8_t* extra = nullptr;
        if (m.extra) {
            if (!takes_extra(*m.extra, m.n_tokens, m.top_k))
                throw Error(what + ": the extra slot's weight (" + m.extra->type() + " [" +
                            std::to_string(m.extra->rows()) + ", " + std::to_string(m.extra->cols()) +
                            "]) cannot ride this call (takes_extra is false)");
            extra = gemv_matrix(*m.extra, l_);
        }
        const int64_t n_slots = n_pairs + (extra ? m.n_tokens : 0);  // pair rows, the extra slot's after them
        const auto st = static_cast<cudaStream_t>(h.stream);
        // Decode with routing weights and the fused setting: one kernel per call (SwiGLU, GEMV and the slot sum).
        if (o_.experts_fused_down && weighted && m.x_per_slot && !grouped &&
            experts_down_fused_fits(l_, int(m.top_k) + (extra ? 1 : 0))) {
            MoeDownArgs d;
            d.w = dev_;
            d.x = m.x;
            d.xs = m.x_stride;
            d.swiglu = m.x_swiglu;
            d.ids = m.ids;
            d.weights = m.weights;
            d.n_expert = int(n_expert_);
            d.top_k = int(m.top_k);
            d.n_tokens = m.n_tokens;
            d.y = m.y;
            d.ys = m.y_stride;
            d.accumulate = m.accumulate;
            d.pdl = h.pdl;
            if (extra) {
                d.extra = extra;
                d.extra_x = m.x + n_pairs * m.x_stride;  // the extra slot's rows follow the pairs'
                d.extra_weights = m.extra_weights;
            }
            experts_down_fused(l_, d, st);
            return;
        }
        const int nt = grouped ? gemm_nt(n_pairs) : 0;
        // The ungrouped GEMV stages silu(gate) * up itself (experts_swiglu, where its kernel takes the rows); other
        // GEMV calls read plain rows: SwiGLU into the workspace first.
        const bool staged = m.x_swiglu && nt == 0 && !grouped && o_.experts_swiglu &&
                            gemv_swiglu_applies(l_, m.x, m.x_stride);
        const bool act_pass = m.x_swiglu && nt == 0 && !staged;
        const uint64_t group_off = weighted ? part_bytes(n_slots) : 0;
        const uint64_t act_off = group_off + (grouped ? group_bytes(n_pairs) : 0);
        const uint64_t need = act_off + (act_pass ? act_bytes(x_rows) : 0);
        if (need > 0 && (ex.workspace_bytes() < need || !ex.workspace()))
            throw Error(what + " of " + std::to_string(m.n_tokens) + " tokens x top_k " + std::to_string(m.top_k) +
                        " needs " + std::to_string(need) + " bytes of workspace, the executor reserved " +
                        std::to_string(ex.workspace_bytes()));
        auto* ws = static_cast<uint8_t*>(ex.workspace());
        GemvArgs a;
        a.w = dev_;
        a.x = m.x;
        a.xs = m.x_stride;
        if (act_pass) {
            auto* act = reinterpret_cast<float*>(ws + act_off);
            swiglu_rows(m.x, m.x_stride, x_rows, cols_, act, h.pdl, st);
            a.x = act;
            a.xs = cols_;
        }
        a.ids = m.ids;
        a.n_expert = int(n_expert_);
        a.top_k = int(m.top_k);
        a.n_pairs = int(n_slots);
        a.extra = extra;
        a.n_routed = int(n_pairs);
        a.x_per_slot = m.x_per_slot;
        a.kw = o_.gemv_kw;
        a.short_rows = o_.gemv_short_rows;
        a.plan = gemv_plan(o_);
        a.sm_count = h.sm_count;
        a.pdl = h.pdl;
        a.n_tokens = 1;
        a.swiglu = staged;
        a.stage_x = o_.gemv_stage_x >= 1;
        a.x_int8 = o_.gemv_int8_x >= 1;
        if (grouped) {
            auto* g = reinterpret_cast<int32_t*>(ws + group_off);
            const int64_t max_groups = experts_max_groups(n_pairs, n_expert_);
            a.n_groups = g;
            a.groups = g + 64;
            a.order = g + 64 + round256(uint64_t(max_groups) * 12) / 4;
            a.n_items = int(max_groups);
            experts_group(m.ids, int(n_pairs), int(n_expert_), nt > 0 ? 8 * nt : kExpertGroup, g,
                          const_cast<int32_t*>(a.groups), const_cast<int32_t*>(a.order), st);
        }
        if (nt > 0) {
            ExpertsGemmArgs ga;
            ga.w = dev_;
            ga.x = m.x;
            ga.xs = m.x_stride;
            ga.swiglu = m.x_swiglu;
            ga.y = weighted ? reinterpret_cast<float*>(ws) : m.y;
            ga.ys = weighted ? rows_ : m.y_stride;
            ga.n_expert = int(n_expert_);
            ga.top_k = int(m.top_k);
            ga.x_per_slot = m.x_per_slot;
            ga.accumulate = !weighted && m.accumulate;
            ga.zero_invalid = !weighted && !m.accumulate;
            ga.groups = a.groups;
            ga.n_groups = a.n_groups;
            ga.order = a.order;
            ga.n_items = int(experts_max_groups(n_pairs, n_expert_, 8 * nt));  // the grid: no CTAs past it
            ga.pdl = h.pdl;
            experts_gemm(l_, ga, nt, st);
            if (weighted)
                experts_reduce(reinterpret_cast<float*>(ws), rows_, m.ids, m.weights, int(n_expert_), m.n_tokens,
                               int(m.top_k), m.y, m.y_stride, m.accumulate, h.pdl, st);
            return;
        }
        if (!weighted) {
            a.y = m.y;
            a.ys = m.y_stride;
            a.accumulate = m.accumulate;
            a.zero_invalid = !m.accumulate;
            gemv(l_, a, st);
            return;
        }
        auto* part = reinterpret_cast<float*>(ws);
        a.y = part;
        a.ys = rows_;
        gemv(l_, a, st);
        experts_reduce(part, rows_, m.ids, m.weights, int(n_expert_), m.n_tokens, int(m.top_k), m.y, m.y_stride,
                       m.accumulate, h.pdl, st, extra != nullptr, m.extra_weights);
    }

private:
    // Token tiles per item of the tensor-core GEMM for a grouped call of n_pairs pairs (0: the grouped GEMV): the
    // setting's, or (auto) 2 on rows over 1024 columns, else by the mean pairs per expert (<= 8: 2, <= 24: 4, else
    // 8); at most what fits. From quant_nvfp4_gpu_bench --experts (H200, Qwen3.6-35B-A3B and Qwen3-30B-A3B shapes,
    // 128-2048 tokens, top 8): on the 2048-column gate|up stacks 2 tiles were the fastest at every size (8 tiles
    // 1.2x slower at 64-128 pairs per expert); on the 512/768-column down stacks 4 tiles at 16 pairs per expert,
    // 8 tiles at 32 and more (1.4x faster than 2).
    int gemm_nt(int64_t n_pairs) const {
        if (o_.experts_gemm == 0 || gemm_nt_max_ == 0) return 0;
        int nt = o_.experts_gemm;
        if (nt < 0) {
            const int64_t mean = (n_pairs + n_expert_ - 1) / n_expert_;
            nt = cols_ > 1024 || mean <= 8 ? 2 : mean <= 24 ? 4 : 8;
        }
        return std::min(nt, gemm_nt_max_);
    }
    bool grouped_ok() const { return o_.experts_grouped && n_expert_ <= kMaxGroupedExperts; }
    uint64_t part_bytes(int64_t n_pairs) const { return round256(uint64_t(n_pairs) * uint64_t(rows_) * 4); }
    // SwiGLU rows for the GEMV paths of an x_swiglu call that do not stage them (grouped GEMV calls, rows the staged
    // kernel cannot take); only weights that ask for [gate | up] get such calls.
    uint64_t act_bytes(int64_t n_pairs) const {
        return swiglu_input() ? round256(uint64_t(n_pairs) * uint64_t(cols_) * 4) : 0;
    }
    // [n_groups (256 bytes)] [groups: max_groups x 3 ints] [order: n_pairs ints]
    uint64_t group_bytes(int64_t n_pairs) const {
        return 256 + round256(uint64_t(experts_max_groups(n_pairs, n_expert_)) * 12) + round256(uint64_t(n_pairs) * 4);
    }

    std::string name_;
    Layout l_;
    uint8_t* dev_;
    Options o_;
    int gemm_nt_max_;
};

}  // namespace

std::unique_ptr<ExpertWeights> make_experts(Executor& ex, std::string name, const Layout& l, int64_t n_expert,
                                            const FillRows& fill, const Options& o) {
    cuda_handles(ex, "experts '" + name + "'");
    if (l.has_fp8) throw Error("experts '" + name + "': expert weights take no FP8 copy");
    gemv_init(gemv_plan(o));
    const int nt_max = o.experts_gemm != 0 ? experts_gemm_init(l) : 0;
    auto* dev = static_cast<uint8_t*>(ex.alloc(uint64_t(n_expert) * l.bytes, name.c_str()));
    upload_matrices(ex, l, fill, n_expert, dev);
    return std::make_unique<WoExperts>(std::move(name), l, n_expert, dev, o, nt_max);
}

}  // namespace imp::wo
