// quant_ggml CUDA: the ExpertWeights of a CUDA executor. Load repacks each expert into the layout of one
// [rows, cols] weight (repack.h; rows padded to whole 16-row tiles per expert for block types) in a pinned staging
// buffer, a batch of experts at a time, and uploads them into one allocation. A grouped matmul takes one of two
// paths, chosen on the host from n_tokens * top_k only (never from ids):
//  - per pair (decode): one GEMV work item per (token, slot) pair, reading its expert id on the device; each pair
//    reads its expert's weights once (the dense one-token kernels: dp4a for Q4_K / Q6_K, MMA otherwise);
//  - grouped (more pairs than experts): a one-CTA kernel groups the pairs by expert into the workspace, then one
//    work item per group of up to 8 pairs runs the 8-token GEMV, so each expert's weights are read once per 8 pairs
//    routed to it. The grid is sized from the bound on the groups; items past the actual count exit at once.
//  - GEMM (calls of at least [plugin.quant_ggml] experts_gemm_tokens tokens: prefill): the same grouping with groups
//    of up to 64 pairs (fewer when their activations would not fit in shared memory), then one launch of the
//    tensor-core grouped GEMM (experts_gemm.cuh) over every (256-row block, group): each expert's weights are read
//    once per 64 pairs routed to it, dequantized to bf16 in registers.
// With x_swiglu the GEMV stages silu(gate) * up of each activation row ([gate | up]) instead of x (no SwiGLU kernel).
// With routing weights the GEMV writes each pair's output row to the workspace and a second kernel sums the slots
// of each token in slot order into y (fp32): deterministic, no atomics. Without, the GEMV writes y's rows directly.
// With experts_fused_sum (per-pair path, up to kSumTokens tokens) the last GEMV CTA of a token's slots for a block
// of rows does that sum instead (ExpertsSum: one counter per token and row block, left at zero): one launch less,
// the same arithmetic.
#include "cuda_experts.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <thread>

#include "imp/cuda/check.h"
#include "imp/cuda/staged_upload.h"
#include "experts_check.h"
#include "experts_kernels.h"
#include "imp/error.h"
#include "repack.h"

namespace imp::ggml::cuda {
namespace {

uint64_t round256(uint64_t v) {
    return (v + 255) / 256 * 256;
}

class CudaExperts final : public ExpertWeights {
public:
    CudaExperts(std::string name, const DeviceLayout& l, int64_t n_expert, void* dev, bool grouped_ok, bool dp4a,
                bool swiglu, int* sum_counters, int gemm_smem, int gemm_nt, int gemm_ctas, bool gemm_bf16x2,
                int64_t gemm_tokens)
        : name_(std::move(name)), l_(l), dev_(dev), grouped_ok_(grouped_ok), dp4a_(dp4a), swiglu_(swiglu),
          sum_counters_(sum_counters), gemm_smem_(gemm_smem), gemm_nt_(gemm_nt), gemm_ctas_(gemm_ctas), gemm_bf16x2_(gemm_bf16x2),
          gemm_tokens_(gemm_tokens) {
        n_expert_ = n_expert;
        rows_ = l.rows;
        cols_ = l.cols;
    }

    std::string type() const override { return type_info(l_.type).name; }
    uint64_t bytes() const override {  // the experts, and the fused sum's counters when there are any
        return uint64_t(n_expert_) * l_.bytes +
               (sum_counters_ ? uint64_t(kSumTokens) * uint64_t(experts_sum_counters(l_)) * sizeof(int) : 0);
    }
    bool swiglu_input() const override { return swiglu_; }

    // The per-pair outputs of a weighted call, and the grouping of the grouped path (whether or not a given call
    // needs them: the engine reserves the maximum once).
    uint64_t workspace_bytes(int64_t n_tokens, int64_t top_k) const override {
        if (n_tokens <= 0 || top_k <= 0) return 0;
        const int64_t n_pairs = int64_t(checked_mul(uint64_t(n_tokens), uint64_t(top_k), name_.c_str()));
        return part_bytes(n_pairs) + (grouped_ok_ || gemm_nt_ > 0 ? group_bytes(n_pairs) : 0);
    }

    void grouped_matmul(Executor& ex, const ExpertMatmul& m) const override {
        const CudaHandles& h = handles(ex);
        if (!check_expert_matmul(name_, rows_, cols_, m)) return;
        const int64_t n_pairs = m.n_tokens * m.top_k;
        const bool weighted = m.weights != nullptr, gemm = use_gemm(m.n_tokens);
        const bool grouped = !gemm && use_grouped(n_pairs);
        const bool fused_sum = weighted && !grouped && !gemm && sum_counters_ && m.n_tokens <= kSumTokens;
        const uint64_t group_off = weighted ? part_bytes(n_pairs) : 0;
        const uint64_t need = group_off + (grouped || gemm ? group_bytes(n_pairs) : 0);
        if (need > 0 && (!ex.workspace() || ex.workspace_bytes() < need))
            throw Error("quant_ggml: experts '" + name_ + "': grouped_matmul of " + std::to_string(m.n_tokens) +
                        " tokens x top_k " + std::to_string(m.top_k) + " needs " + std::to_string(need) +
                        " bytes of workspace, the executor reserved " + std::to_string(ex.workspace_bytes()));
        auto* ws = static_cast<uint8_t*>(ex.workspace());
        auto* part = reinterpret_cast<float*>(ws);
        const auto st = static_cast<cudaStream_t>(h.stream);
        ExpertsArgs a;
        a.w = dev_;
        a.expert_bytes = l_.bytes;
        a.route.ids = m.ids;
        a.route.x = m.x;
        a.route.xs = m.x_stride;
        a.route.out = weighted ? part : m.y;
        a.route.os = weighted ? rows_ : m.y_stride;
        a.route.n_expert = int(n_expert_);
        a.route.top_k = int(m.top_k);
        a.route.x_per_slot = m.x_per_slot ? 1 : 0;
        a.route.glu = m.x_swiglu ? 1 : 0;
        a.accumulate = !weighted && m.accumulate;
        a.zero_invalid = !weighted && !m.accumulate;
        a.splits = plan_.splits;
        a.kw = plan_.kw;
        a.dp4a = dp4a_;
        a.pdl = h.pdl;
        if (gemm) {  // groups of up to 8 gemm_nt_ pairs, laid out as group_bytes sized them (the bound only falls)
            const int nt = plan_.gemm_nt > 0 ? plan_.gemm_nt : gemm_nt_;
            const int group = 8 * nt;
            const int64_t max_groups = experts_max_groups(n_pairs, n_expert_, group);
            auto* g = reinterpret_cast<int32_t*>(ws + group_off);
            a.route.n_groups = g;
            a.route.groups = g + 1;
            a.route.order = g + 1 + 3 * max_groups;
            a.n_items = int(max_groups);
            experts_group(m.ids, int(n_pairs), int(n_expert_), a.zero_invalid, g, g + 1, g + 1 + 3 * max_groups,
                          h.pdl, st, group);
            const bool bf16x2 = plan_.gemm_dequant > 0 ? plan_.gemm_dequant == 2 : gemm_bf16x2_;
            experts_gemm(l_, a, nt, plan_.gemm_ctas > 0 ? plan_.gemm_ctas : gemm_ctas_, bf16x2, st);
        } else if (grouped) {
            const int64_t max_groups = experts_max_groups(n_pairs, n_expert_);
            auto* g = reinterpret_cast<int32_t*>(ws + group_off);
            a.route.n_groups = g;
            a.route.groups = g + 1;
            a.route.order = g + 1 + 3 * max_groups;
            a.n_items = int(max_groups);
            a.plan_items = int(max_groups);
            experts_group(m.ids, int(n_pairs), int(n_expert_), a.zero_invalid, g, g + 1, g + 1 + 3 * max_groups,
                          h.pdl, st);
        } else {
            a.n_items = int(n_pairs);
            a.plan_items = int(n_pairs);
        }
        if (fused_sum) {
            a.sum.weights = m.weights;
            a.sum.y = m.y;
            a.sum.ys = m.y_stride;
            a.sum.accumulate = m.accumulate ? 1 : 0;
            a.sum.counters = sum_counters_;
        }
        if (!gemm) experts_gemv(l_, a, h.sm_count, h.cc, st);
        if (weighted && !fused_sum)
            experts_reduce(part, int(rows_), m.ids, m.weights, int(n_expert_), int(m.n_tokens), int(m.top_k), m.y,
                           m.y_stride, m.accumulate ? 1 : 0, h.pdl, st);
    }

    void set_plan(const ExpertsPlan& p) {
        if (p.gemm_nt != 0 && (gemm_nt_ <= 0 || experts_gemm_nt(l_, gemm_smem_, p.gemm_nt) != p.gemm_nt))
            throw Error("quant_ggml: experts '" + name_ + "': a GEMM plan of " + std::to_string(p.gemm_nt) +
                        " token tiles per group (2, 4 or 8 whose activations fit in shared memory)");
        if (p.gemm_dequant < 0 || p.gemm_dequant > 2)
            throw Error("quant_ggml: experts '" + name_ + "': a GEMM plan of dequantization " +
                        std::to_string(p.gemm_dequant) + " (0, 1 or 2)");
        if (p.gemm_ctas < 0 || p.gemm_ctas > 2)
            throw Error("quant_ggml: experts '" + name_ + "': a GEMM plan of " + std::to_string(p.gemm_ctas) +
                        " CTAs per SM (0, 1 or 2)");
        plan_ = p;
    }

private:
    uint64_t part_bytes(int64_t n_pairs) const { return round256(uint64_t(n_pairs) * uint64_t(rows_) * 4); }
    uint64_t group_bytes(int64_t n_pairs) const {
        return round256(4 * (1 + 3 * uint64_t(experts_max_groups(n_pairs, n_expert_)) + uint64_t(n_pairs)));
    }
    bool use_gemm(int64_t n_tokens) const {
        if (gemm_nt_ <= 0 || n_expert_ > kMaxGroupedExperts) return false;
        if (plan_.path != 0) return plan_.path == 3;
        return gemm_tokens_ > 0 && n_tokens >= gemm_tokens_;
    }
    bool use_grouped(int64_t n_pairs) const {
        if (!grouped_ok_ || plan_.path == 1) return false;
        return plan_.path == 2 || n_pairs > n_expert_;
    }

    const CudaHandles& handles(const Executor& ex) const {
        const CudaHandles* h = ex.kind() == DeviceKind::CUDA ? ex.cuda() : nullptr;
        if (!h)
            throw Error("quant_ggml: experts '" + name_ + "' live on a CUDA device; executor " + ex.name() +
                        " gives no CUDA handles");
        return *h;
    }

    std::string name_;
    DeviceLayout l_;  // of one expert
    void* dev_;
    bool grouped_ok_;
    ExpertsPlan plan_;
    bool dp4a_ = true;
    bool swiglu_ = false;  // [plugin.quant_ggml] experts_swiglu: what swiglu_input() answers (x_swiglu works anyway)
    int* sum_counters_ = nullptr;  // [plugin.quant_ggml] experts_fused_sum: kSumTokens x experts_sum_counters(l_), zero
    int gemm_smem_ = 0;            // the GEMM's dynamic shared memory limit (experts_gemm_smem)
    int gemm_nt_ = 0;              // 8-token tiles per GEMM group (experts_gemm_nt), 0: no GEMM for this weight
    int gemm_ctas_ = 1;            // [plugin.quant_ggml] experts_gemm_ctas
    bool gemm_bf16x2_ = false;     // [plugin.quant_ggml] experts_gemm_dequant = "bf16x2"
    int64_t gemm_tokens_ = 0;      // [plugin.quant_ggml] experts_gemm_tokens
};

void require_supported(const std::string& name, Type t) {
    if (experts_supported(t)) return;
    std::string list;
    for (int i = 0; i < kTypeCount; ++i)
        if (experts_supported(Type(i))) list += std::string(list.empty() ? "" : ",") + type_info(Type(i)).name;
    throw Error("quant_ggml: experts '" + name + "' have type " + type_info(t).name +
                ", which has no CUDA kernels (CUDA supports " + list + ")");
}

// f(k, i) for i in [0, n) on up to `threads` host threads, k the thread's index.
template <class F>
void parallel(int64_t n, int threads, F&& f) {
    threads = int(std::min<int64_t>(threads, n));
    if (threads <= 1) {
        for (int64_t i = 0; i < n; ++i) f(0, i);
        return;
    }
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k)
        pool.emplace_back([&, k] {
            for (int64_t i = n * k / threads; i < n * (k + 1) / threads; ++i) f(k, i);
        });
    for (auto& t : pool) t.join();
}

}  // namespace

bool experts_supported(Type t) {
    return cuda_supports(t);
}

uint64_t experts_device_bytes(const std::string& name, Type t, int64_t n_expert, int64_t rows, int64_t cols) {
    require_supported(name, t);
    if (n_expert <= 0 || rows <= 0 || rows > INT32_MAX || cols > INT32_MAX)
        throw Error("quant_ggml: experts '" + name + "' has bad shape [" + std::to_string(n_expert) + ", " +
                    std::to_string(rows) + ", " + std::to_string(cols) + "]");
    (void)row_bytes(type_info(t), cols, "experts '" + name + "'");
    return checked_mul(uint64_t(n_expert), device_layout(t, rows, cols).bytes, name.c_str());
}

std::unique_ptr<ExpertWeights> load_experts(const std::string& name, Type t, int64_t n_expert, int64_t rows,
                                            int64_t cols, const std::vector<const uint8_t*>& expert_data,
                                            Executor& ex, const CudaOptions& opt) {
    std::vector<std::vector<ExpertRows>> parts(expert_data.size());
    for (size_t e = 0; e < expert_data.size(); ++e) parts[e] = {{expert_data[e], rows}};
    return load_experts(name, t, n_expert, rows, cols, parts, ex, opt);
}

std::unique_ptr<ExpertWeights> load_experts(const std::string& name, Type t, int64_t n_expert, int64_t rows,
                                            int64_t cols, const std::vector<std::vector<ExpertRows>>& expert_parts,
                                            Executor& ex, const CudaOptions& opt) {
    require_supported(name, t);
    std::vector<const uint8_t*> first(expert_parts.size());
    for (size_t e = 0; e < expert_parts.size(); ++e) first[e] = expert_parts[e].empty() ? nullptr : expert_parts[e][0].data;
    const uint64_t rb = check_experts_source(name, t, n_expert, rows, cols, first);
    for (size_t e = 0; e < expert_parts.size(); ++e) {
        int64_t sum = 0;
        for (const ExpertRows& p : expert_parts[e]) {
            if (!p.data || p.rows <= 0 || p.rows > rows - sum)
                throw Error("quant_ggml: experts '" + name + "': expert " + std::to_string(e) + " has a part of " +
                            std::to_string(p.rows) + " rows" + (p.data ? "" : " without data") + " (" +
                            std::to_string(rows) + " rows in all)");
            sum += p.rows;
        }
        if (sum != rows)
            throw Error("quant_ggml: experts '" + name + "': expert " + std::to_string(e) + " has " +
                        std::to_string(sum) + " rows in its parts, not " + std::to_string(rows));
    }
    const CudaHandles* h = ex.kind() == DeviceKind::CUDA ? ex.cuda() : nullptr;
    if (!h) throw Error("quant_ggml: experts '" + name + "': executor " + ex.name() + " gives no CUDA handles");
    const DeviceLayout l = device_layout(t, rows, cols);
    const uint64_t total = checked_mul(uint64_t(n_expert), l.bytes, name.c_str());
    prepare_experts(t);
    auto* dev = static_cast<uint8_t*>(ex.alloc(total, name.c_str()));
    // Repack a batch of experts at a time (at least one expert, up to 64 MiB), one host thread per expert, while the
    // previous batch's copy to the GPU runs (imp/cuda/staged_upload.h). An expert in several parts is first joined
    // in its thread's buffer.
    const uint64_t batch_bytes = std::min(total, std::max<uint64_t>(l.bytes, uint64_t(64) << 20));
    const int64_t batch = int64_t(batch_bytes / l.bytes);
    const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::vector<uint8_t>> joined(static_cast<size_t>(threads));
    auto source = [&](int k, int64_t e) -> const uint8_t* {
        const auto& parts = expert_parts[size_t(e)];
        if (parts.size() == 1) return parts[0].data;
        std::vector<uint8_t>& buf = joined[size_t(k)];
        buf.resize(uint64_t(rows) * rb);
        uint64_t off = 0;
        for (const ExpertRows& p : parts) {
            std::memcpy(buf.data() + off, p.data, uint64_t(p.rows) * rb);
            off += uint64_t(p.rows) * rb;
        }
        return buf.data();
    };
    ::imp::cuda::StagedUpload up(*h, uint64_t(batch) * l.bytes, (n_expert + batch - 1) / batch);
    for (int64_t e0 = 0; e0 < n_expert; e0 += batch) {
        const int64_t n = std::min(batch, n_expert - e0);
        uint8_t* host = up.host();
        if (n >= threads)
            parallel(n, threads, [&](int t, int64_t i) {
                repack(l, source(t, e0 + i), rb, host + uint64_t(i) * l.bytes, 1);
            });
        else
            for (int64_t i = 0; i < n; ++i) repack(l, source(0, e0 + i), rb, host + uint64_t(i) * l.bytes);
        up.send(dev + uint64_t(e0) * l.bytes, uint64_t(n) * l.bytes);
    }
    up.finish();
    const bool grouped_ok = n_expert <= kMaxGroupedExperts && experts_grouped_fits(l, h->sm_count, h->cc);
    const int gemm_smem = experts_gemm_smem(h->device);
    const int gemm_nt = n_expert <= kMaxGroupedExperts ? experts_gemm_nt(l, gemm_smem, opt.experts_gemm_tiles) : 0;
    if (gemm_nt > 0) prepare_experts_gemm(t, gemm_smem);
    int* counters = nullptr;
    if (opt.experts_fused_sum) {  // zero once here; the kernels leave them at zero
        const uint64_t n = uint64_t(kSumTokens) * uint64_t(experts_sum_counters(l)) * sizeof(int);
        counters = static_cast<int*>(ex.alloc(n, (name + ".sum_counters").c_str()));
        const std::vector<int> zero(n / sizeof(int), 0);
        ex.upload(counters, zero.data(), n);
    }
    auto w = std::make_unique<CudaExperts>(name, l, n_expert, dev, grouped_ok, opt.dp4a, opt.experts_swiglu, counters,
                                           gemm_smem, gemm_nt, opt.experts_gemm_ctas, opt.experts_gemm_bf16x2,
                                           opt.experts_gemm_tokens);
    w->set_plan({0, 0, opt.experts_kw});
    return w;
}

void set_experts_plan(ExpertWeights& w, const ExpertsPlan& plan) {
    auto* c = dynamic_cast<CudaExperts*>(&w);
    if (!c) throw Error("quant_ggml: set_experts_plan needs the ExpertWeights of a CUDA executor");
    c->set_plan(plan);
}

}  // namespace imp::ggml::cuda
