// quant_ggml: CPU expert weights. A grouped matmul first groups the valid (token, slot) pairs by expert (a counting
// sort on the host: ids live in host memory on the CPU executor), then splits the rows over parallel_for. Each
// chunk walks its rows 4 at a time: for every expert that has pairs, the 4 rows are dotted with each pair's
// activation row, either straight from the blocks (fused kernels, up to 4 pairs on the expert, as the dense matmul
// does up to 4 tokens) or dequantized once into a thread-local buffer and dotted with every pair. The 4 results per
// pair go to a small buffer; then each output row is written once: the pair's own row, or the routing-weighted sum
// over the token's slots in slot order (fp32). Every output's arithmetic is independent of the chunking, so results
// do not depend on the thread count.
#include "experts_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "experts_check.h"
#include "imp/error.h"
#include "kernels.h"

namespace imp::ggml {
namespace {

constexpr int kRowTile = 4;
constexpr int64_t kFusedPairs = 4;
constexpr int64_t kWorkPerChunk = 1 << 16;

// The valid pairs grouped by expert (pair order within an expert).
struct Routing {
    std::vector<uint8_t> valid;   // [n_pairs]
    std::vector<int32_t> expert;  // the experts that have pairs, ascending
    std::vector<int64_t> start;   // pairs of expert[i]: order[start[i] .. start[i + 1])
    std::vector<int64_t> order;
};

Routing route(const int32_t* ids, int64_t n_pairs, int64_t n_expert) {
    Routing r;
    r.valid.resize(size_t(n_pairs));
    std::vector<int64_t> count(size_t(n_expert) + 1, 0);
    for (int64_t p = 0; p < n_pairs; ++p) {
        const int64_t id = ids[p];
        r.valid[size_t(p)] = id >= 0 && id < n_expert;
        if (r.valid[size_t(p)]) ++count[size_t(id) + 1];
    }
    r.start.push_back(0);
    for (int64_t e = 0; e < n_expert; ++e) {
        if (count[size_t(e) + 1] == 0) continue;
        r.expert.push_back(int32_t(e));
        r.start.push_back(r.start.back() + count[size_t(e) + 1]);
    }
    for (int64_t e = 0; e < n_expert; ++e) count[size_t(e) + 1] += count[size_t(e)];  // first slot of each expert
    r.order.resize(size_t(r.start.back()));
    for (int64_t p = 0; p < n_pairs; ++p)
        if (r.valid[size_t(p)]) r.order[size_t(count[size_t(ids[p])]++)] = p;
    return r;
}

class CpuExperts final : public ExpertWeights {
public:
    CpuExperts(std::string name, const TypeInfo& t, int64_t n_expert, int64_t rows, int64_t cols, uint64_t row_bytes,
               const uint8_t* data, const Kernels& kernels)
        : name_(std::move(name)), type_(&t), row_bytes_(row_bytes), data_(data), kernels_(&kernels) {
        n_expert_ = n_expert;
        rows_ = rows;
        cols_ = cols;
    }

    std::string type() const override { return type_->name; }
    uint64_t bytes() const override { return uint64_t(n_expert_) * uint64_t(rows_) * row_bytes_; }

    void grouped_matmul(Executor& ex, const ExpertMatmul& m) const override {
        if (ex.kind() != DeviceKind::CPU)
            throw Error("quant_ggml: experts '" + name_ + "' live in CPU memory; executor " + ex.name() +
                        " is not a CPU executor");
        if (!check_expert_matmul(name_, rows_, cols_, m)) return;
        if (m.x_swiglu) {  // the reference form: silu(gate) * up into a buffer, then the plain matmul
            const int64_t x_rows = m.x_per_slot ? m.n_tokens * m.top_k : m.n_tokens;
            std::vector<float> act(size_t(x_rows * cols_));
            for (int64_t r = 0; r < x_rows; ++r)
                for (int64_t c = 0; c < cols_; ++c) {
                    const float g = m.x[r * m.x_stride + c], u = m.x[r * m.x_stride + cols_ + c];
                    act[size_t(r * cols_ + c)] = g / (1.f + std::exp(-g)) * u;
                }
            ExpertMatmul plain = m;
            plain.x = act.data();
            plain.x_stride = cols_;
            plain.x_swiglu = false;
            grouped_matmul(ex, plain);
            return;
        }
        const Routing rt = route(m.ids, m.n_tokens * m.top_k, n_expert_);
        const int64_t per_row = std::max<int64_t>(1, cols_ * int64_t(rt.order.size()));
        int64_t grain = (kWorkPerChunk + per_row - 1) / per_row;
        grain = (grain + kRowTile - 1) / kRowTile * kRowTile;
        ex.parallel_for(rows_, grain, [&](int64_t r0, int64_t r1) { run_rows(m, rt, r0, r1); });
    }

private:
    const float* x_row(const ExpertMatmul& m, int64_t p) const {
        return m.x + (m.x_per_slot ? p : p / m.top_k) * m.x_stride;
    }

    // Rows [r0, r1) of every output.
    void run_rows(const ExpertMatmul& m, const Routing& rt, int64_t r0, int64_t r1) const {
        const int64_t n_pairs = m.n_tokens * m.top_k, nb = cols_ / type_->block;
        const auto dot_q = kernels_->dot_q[int(type_->type)];
        const auto dq = kernels_->dequant[int(type_->type)];
        const bool plain_f32 = type_->type == Type::F32;
        thread_local std::vector<float> part, buf;  // part[p * kRowTile + i]: pair p, row r + i
        if (part.size() < size_t(n_pairs * kRowTile)) part.resize(size_t(n_pairs * kRowTile));
        if (!plain_f32 && buf.size() < size_t(kRowTile * cols_)) buf.resize(size_t(kRowTile * cols_));
        for (int64_t r = r0; r < r1; r += kRowTile) {
            const int nr = int(std::min<int64_t>(kRowTile, r1 - r));
            for (size_t a = 0; a < rt.expert.size(); ++a) {
                const uint8_t* w0 = data_ + (uint64_t(rt.expert[a]) * uint64_t(rows_) + uint64_t(r)) * row_bytes_;
                const int64_t* pb = rt.order.data() + rt.start[a];
                const int64_t np = rt.start[a + 1] - rt.start[a];
                if (dot_q && np <= kFusedPairs) {
                    for (int64_t k = 0; k < np; ++k)
                        for (int i = 0; i < nr; ++i)
                            dot_q(w0 + uint64_t(i) * row_bytes_, nb, x_row(m, pb[k]), 0, 1,
                                  &part[size_t(pb[k] * kRowTile + i)], 1);
                    continue;
                }
                const float* w = reinterpret_cast<const float*>(w0);
                if (!plain_f32) {
                    for (int i = 0; i < nr; ++i) dq(w0 + uint64_t(i) * row_bytes_, nb, buf.data() + i * cols_);
                    w = buf.data();
                }
                for (int64_t k = 0; k < np; ++k)
                    kernels_->dot_rows(w, cols_, nr, x_row(m, pb[k]), cols_, &part[size_t(pb[k] * kRowTile)]);
            }
            if (!m.weights) {
                for (int64_t p = 0; p < n_pairs; ++p) {
                    float* yp = m.y + p * m.y_stride + r;
                    const float* v = &part[size_t(p * kRowTile)];
                    if (!rt.valid[size_t(p)]) {
                        if (!m.accumulate) std::fill(yp, yp + nr, 0.f);
                    } else if (m.accumulate) {
                        for (int i = 0; i < nr; ++i) yp[i] += v[i];
                    } else {
                        for (int i = 0; i < nr; ++i) yp[i] = v[i];
                    }
                }
                continue;
            }
            for (int64_t t = 0; t < m.n_tokens; ++t) {
                float s[kRowTile] = {0.f, 0.f, 0.f, 0.f};
                for (int64_t j = 0; j < m.top_k; ++j) {
                    const int64_t p = t * m.top_k + j;
                    if (!rt.valid[size_t(p)]) continue;
                    const float wj = m.weights[p];
                    for (int i = 0; i < nr; ++i) s[i] += wj * part[size_t(p * kRowTile + i)];
                }
                float* yp = m.y + t * m.y_stride + r;
                for (int i = 0; i < nr; ++i) yp[i] = m.accumulate ? yp[i] + s[i] : s[i];
            }
        }
    }

    std::string name_;
    const TypeInfo* type_;
    uint64_t row_bytes_;
    const uint8_t* data_;  // executor memory: n_expert * rows * row_bytes raw ggml bytes
    const Kernels* kernels_;
};

}  // namespace

uint64_t cpu_experts_bytes(const std::string& name, Type t, int64_t n_expert, int64_t rows, int64_t cols) {
    const uint64_t rb = row_bytes(type_info(t), cols, "experts '" + name + "'");
    if (n_expert <= 0 || rows <= 0)
        throw Error("quant_ggml: experts '" + name + "' has bad shape [" + std::to_string(n_expert) + ", " +
                    std::to_string(rows) + ", " + std::to_string(cols) + "]");
    return checked_mul(checked_mul(uint64_t(n_expert), uint64_t(rows), name.c_str()), rb, name.c_str());
}

std::unique_ptr<ExpertWeights> make_cpu_experts(const std::string& name, Type t, int64_t n_expert, int64_t rows,
                                                int64_t cols, const std::vector<const uint8_t*>& expert_data,
                                                Executor& ex, const Kernels& kernels) {
    const uint64_t rb = check_experts_source(name, t, n_expert, rows, cols, expert_data);
    if (ex.kind() != DeviceKind::CPU)
        throw Error("quant_ggml: experts '" + name + "': executor " + ex.name() + " is not a CPU executor");
    const uint64_t expert_bytes = uint64_t(rows) * rb;
    auto* p = static_cast<uint8_t*>(ex.alloc(uint64_t(n_expert) * expert_bytes, name.c_str()));
    for (int64_t e = 0; e < n_expert; ++e) ex.upload(p + uint64_t(e) * expert_bytes, expert_data[size_t(e)], expert_bytes);
    return std::make_unique<CpuExperts>(name, type_info(t), n_expert, rows, cols, rb, p, kernels);
}

}  // namespace imp::ggml
