// quant_fp8 / quant_nvfp4: the CPU ExpertWeights over a row-dequantization function (see dequant_cpu.h). A grouped
// matmul groups the valid (token, slot) pairs by expert (ids are host memory on the CPU executor), splits the rows
// over parallel_for, and for each tile of 4 rows and each expert with pairs dequantizes the tile once and dots it
// with the pairs' activation rows. Each output row is then written once: the pair's own row, or the routing-weighted
// sum over the token's slots in slot order (fp32).
#include <algorithm>
#include <climits>
#include <vector>

#include "dequant_cpu.h"
#include "imp/error.h"
#include "imp/executor.h"

namespace imp::quant_cpu {
namespace {

constexpr int kRowTile = 4;
constexpr int64_t kWorkPerChunk = 1 << 16;

struct Routing {
    std::vector<uint8_t> valid;   // [n_pairs]
    std::vector<int32_t> expert;  // experts that have pairs, ascending
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
    for (int64_t e = 0; e < n_expert; ++e) count[size_t(e) + 1] += count[size_t(e)];
    r.order.resize(size_t(r.start.back()));
    for (int64_t p = 0; p < n_pairs; ++p)
        if (r.valid[size_t(p)]) r.order[size_t(count[size_t(ids[p])]++)] = p;
    return r;
}

class DequantExperts final : public ExpertWeights {
public:
    DequantExperts(std::string plugin, std::string name, std::string type, int64_t n_expert, int64_t rows,
                   int64_t cols, uint64_t bytes, ExpertRowFn row)
        : plugin_(std::move(plugin)), name_(std::move(name)), type_(std::move(type)), bytes_(bytes),
          row_(std::move(row)) {
        n_expert_ = n_expert;
        rows_ = rows;
        cols_ = cols;
    }
    std::string type() const override { return type_; }
    uint64_t bytes() const override { return bytes_; }

    void grouped_matmul(Executor& ex, const ExpertMatmul& m) const override {
        const std::string what = plugin_ + ": experts '" + name_ + "': grouped_matmul ";
        if (ex.kind() != DeviceKind::CPU)
            throw Error(what + "on executor " + ex.name() + ", but the experts live in CPU memory");
        if (m.n_tokens < 0 || m.top_k < 1)
            throw Error(what + "with " + std::to_string(m.n_tokens) + " tokens, top_k " + std::to_string(m.top_k));
        if (m.n_tokens == 0) return;
        if (m.top_k > INT32_MAX / m.n_tokens) throw Error(what + "with more than 2^31 (token, slot) pairs");
        if (!m.x || !m.ids || !m.y) throw Error(what + "without x, ids or y");
        const int64_t n_pairs = m.n_tokens * m.top_k;
        const int64_t x_rows = m.x_per_slot ? n_pairs : m.n_tokens, y_rows = m.weights ? m.n_tokens : n_pairs;
        if ((x_rows > 1 && m.x_stride < cols_) || (y_rows > 1 && m.y_stride < rows_))
            throw Error(what + "strides x " + std::to_string(m.x_stride) + ", y " + std::to_string(m.y_stride) +
                        " are below cols " + std::to_string(cols_) + ", rows " + std::to_string(rows_));
        const Routing rt = route(m.ids, n_pairs, n_expert_);
        const int64_t per_row = std::max<int64_t>(1, cols_ * int64_t(rt.order.size()));
        int64_t grain = (kWorkPerChunk + per_row - 1) / per_row;
        grain = (grain + kRowTile - 1) / kRowTile * kRowTile;
        ex.parallel_for(rows_, grain, [&](int64_t r0, int64_t r1) { run_rows(m, rt, r0, r1); });
    }

private:
    void run_rows(const ExpertMatmul& m, const Routing& rt, int64_t r0, int64_t r1) const {
        const int64_t n_pairs = m.n_tokens * m.top_k;
        thread_local std::vector<float> part, buf;  // part[p * kRowTile + i]: pair p, row r + i
        if (part.size() < size_t(n_pairs * kRowTile)) part.resize(size_t(n_pairs * kRowTile));
        if (buf.size() < size_t(kRowTile * cols_)) buf.resize(size_t(kRowTile * cols_));
        for (int64_t r = r0; r < r1; r += kRowTile) {
            const int nr = int(std::min<int64_t>(kRowTile, r1 - r));
            for (size_t a = 0; a < rt.expert.size(); ++a) {
                for (int i = 0; i < nr; ++i) row_(rt.expert[a], r + i, buf.data() + i * cols_);
                for (int64_t k = rt.start[a]; k < rt.start[a + 1]; ++k) {
                    const int64_t p = rt.order[size_t(k)];
                    const float* x = m.x + (m.x_per_slot ? p : p / m.top_k) * m.x_stride;
                    for (int i = 0; i < nr; ++i) part[size_t(p * kRowTile + i)] = dot(buf.data() + i * cols_, x, cols_);
                }
            }
            if (!m.weights) {
                for (int64_t p = 0; p < n_pairs; ++p) {
                    float* yp = m.y + p * m.y_stride + r;
                    const float* v = &part[size_t(p * kRowTile)];
                    for (int i = 0; i < nr; ++i) {
                        if (!rt.valid[size_t(p)]) {
                            if (!m.accumulate) yp[i] = 0.f;
                        } else {
                            yp[i] = m.accumulate ? yp[i] + v[i] : v[i];
                        }
                    }
                }
                continue;
            }
            for (int64_t t = 0; t < m.n_tokens; ++t) {
                float s[kRowTile] = {0.f, 0.f, 0.f, 0.f};
                for (int64_t j = 0; j < m.top_k; ++j) {
                    const int64_t p = t * m.top_k + j;
                    if (!rt.valid[size_t(p)]) continue;
                    for (int i = 0; i < nr; ++i) s[i] += m.weights[p] * part[size_t(p * kRowTile + i)];
                }
                float* yp = m.y + t * m.y_stride + r;
                for (int i = 0; i < nr; ++i) yp[i] = m.accumulate ? yp[i] + s[i] : s[i];
            }
        }
    }

    std::string plugin_, name_, type_;
    uint64_t bytes_;
    ExpertRowFn row_;
};

}  // namespace

std::unique_ptr<ExpertWeights> make_experts(std::string plugin, std::string name, std::string type, int64_t n_expert,
                                            int64_t rows, int64_t cols, uint64_t bytes, ExpertRowFn row) {
    return std::make_unique<DequantExperts>(std::move(plugin), std::move(name), std::move(type), n_expert, rows, cols,
                                            bytes, std::move(row));
}

}  // namespace imp::quant_cpu
