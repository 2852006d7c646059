// Test harness for the shared blocks on the CPU executor without an engine: a model source held in memory (random
// tensors the test writes), an fp32 Weight and the WeightSet a block binds (fused q|k|v and gate|up built from the
// parts, or not), and a multi-sequence step over a paged KV pool with a scrambled block table.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "imp/dtype.h"
#include "imp/executor.h"
#include "imp/layer.h"
#include "imp/model.h"
#include "imp/quant_format.h"

namespace imp::blocks_test {

// Tensors in memory: F32, or BF16 (rounded; the test reads the rounded values back through value()).
class HostModel final : public ModelSource {
public:
    void add(const std::string& name, std::vector<int64_t> shape, std::vector<float> v, bool bf16 = false) {
        std::vector<uint8_t> bytes(v.size() * (bf16 ? 2 : 4));
        for (size_t i = 0; i < v.size(); ++i) {
            if (bf16) {
                const uint16_t h = f32_to_bf16(v[i]);
                std::memcpy(bytes.data() + 2 * i, &h, 2);
                v[i] = bf16_to_f32(h);
            } else {
                std::memcpy(bytes.data() + 4 * i, &v[i], 4);
            }
        }
        data_.push_back(std::move(bytes));
        values_[name] = std::move(v);
        TensorInfo t;
        t.name = name;
        t.type = bf16 ? "BF16" : "F32";
        t.shape = std::move(shape);
        t.nbytes = data_.back().size();
        tensors_.push_back(t);
        for (size_t i = 0; i < tensors_.size(); ++i) tensors_[i].data = data_[i].data();
        build_name_index();
    }
    const std::vector<float>& value(const std::string& name) const { return values_.at(name); }

    ContainerKind kind() const override { return ContainerKind::Safetensors; }
    std::string architecture() const override { return "blocks-test"; }
    const Metadata& metadata() const override { return md_; }
    const std::vector<TensorInfo>& tensors() const override { return tensors_; }
    std::string path() const override { return "host-model"; }
    uint64_t file_bytes() const override { return 0; }

private:
    Metadata md_;
    std::vector<TensorInfo> tensors_;
    std::vector<std::vector<uint8_t>> data_;
    std::map<std::string, std::vector<float>> values_;
};

// What the weights of a FusedInput set took through Weight::matmul_fused: calls with the norm, with the SwiGLU input.
struct FusedCalls {
    int norm = 0, up = 0;
};

// W [rows, cols] in host memory; y = x W^T with fp32 sums. With `fused` (not null), matmul_fused also takes the
// RMSNorm or the SwiGLU before the matmul (FusedMatmul::norm or up, as a GEMM format's bf16 conversion does; not the
// SwiGLU epilogue), computed here in double per element, and counts the call: a block's fused calls (pointers,
// strides, accumulate) are then checked by its reference comparison.
class F32Weight final : public Weight {
public:
    F32Weight(std::vector<float> w, int64_t rows, int64_t cols, FusedCalls* fused = nullptr)
        : w_(std::move(w)), fused_(fused) {
        rows_ = rows;
        cols_ = cols;
        REQUIRE(int64_t(w_.size()) == rows * cols);
    }
    bool matmul_fused(Executor& ex, const FusedMatmul& m) const override {
        if (!fused_ || m.swiglu || (m.norm != nullptr) == (m.up != nullptr)) return false;
        std::vector<float> in(size_t(m.n_tokens * cols_));
        for (int64_t t = 0; t < m.n_tokens; ++t) {
            const float* x = m.x + t * m.x_stride;
            double ss = 0;
            for (int64_t c = 0; c < cols_; ++c) ss += double(x[c]) * x[c];
            const double rs = 1.0 / std::sqrt(ss / double(cols_) + double(m.norm_eps));
            for (int64_t c = 0; c < cols_; ++c) {
                const double g = x[c];
                in[size_t(t * cols_ + c)] =
                    m.norm ? float(g * rs * m.norm[c]) : float(g / (1.0 + std::exp(-g)) * m.up[t * m.x_stride + c]);
            }
        }
        matmul(ex, in.data(), cols_, m.y, m.y_stride, m.n_tokens, m.accumulate);
        ++(m.norm ? fused_->norm : fused_->up);
        return true;
    }
    std::string type() const override { return "F32"; }
    uint64_t bytes() const override { return w_.size() * 4; }
    void matmul(Executor&, const float* x, int64_t xs, float* y, int64_t ys, int64_t n, bool acc) const override {
        for (int64_t t = 0; t < n; ++t)
            for (int64_t r = 0; r < rows_; ++r) {
                float s = 0.f;
                for (int64_t c = 0; c < cols_; ++c) s += x[t * xs + c] * w_[size_t(r * cols_ + c)];
                y[t * ys + r] = acc ? y[t * ys + r] + s : s;
            }
    }
    void get_rows(Executor&, const int32_t* ids, int64_t n, float* out) const override {
        for (int64_t i = 0; i < n; ++i)
            std::memcpy(out + i * cols_, w_.data() + int64_t(ids[i]) * cols_, size_t(cols_) * 4);
    }

private:
    std::vector<float> w_;
    FusedCalls* fused_;
};

// The weights of one layer, as the engine would hand them: computed Vector values where the spec has them, file
// tensors otherwise (shapes checked); a fused matrix built from its parts when `fuse`, absent otherwise. With
// `fused_input`, the matrices take the norm / SwiGLU before them (F32Weight) and count it there.
class HostWeights final : public WeightSet {
public:
    HostWeights(const Layer& layer, const HostModel& src, bool fuse, FusedCalls* fused_input = nullptr) {
        for (const WeightSpec& s : layer.weight_specs()) {
            INFO("weight " << s.name);
            if (s.use == WeightSpec::Use::Vector) {
                if (!s.values.empty()) {
                    vectors_[s.name] = s.values;
                    continue;
                }
                REQUIRE(src.find(s.name));
                REQUIRE(src.find(s.name)->shape == s.shape);
                vectors_[s.name] = src.value(s.name);
                continue;
            }
            std::vector<float> w;
            if (!s.concat.empty()) {
                if (!fuse) continue;
                for (const auto& p : s.concat) w.insert(w.end(), src.value(p).begin(), src.value(p).end());
            } else {
                REQUIRE(src.find(s.name));
                REQUIRE(src.find(s.name)->shape == s.shape);
                w = src.value(s.name);
            }
            matrices_[s.name] = std::make_unique<F32Weight>(std::move(w), s.shape[0], s.shape[1], fused_input);
        }
    }
    const Weight* matrix(const std::string& name) const override {
        auto it = matrices_.find(name);
        return it == matrices_.end() ? nullptr : it->second.get();
    }
    const float* vector(const std::string& name) const override {
        auto it = vectors_.find(name);
        return it == vectors_.end() ? nullptr : it->second.data();
    }

private:
    std::map<std::string, std::unique_ptr<F32Weight>> matrices_;
    std::map<std::string, std::vector<float>> vectors_;
};

// A paged fp32 KV pool (blocks of 16 positions) and the StepBatch of one step: rows[s] new tokens for sequence s,
// which already holds past[s] positions. Sequence s owns blocks {s, s + n_seqs, ...} in reverse order, so the
// physical blocks are not in position order.
struct KvPool {
    static constexpr int kBlock = 16, kMaxBlocks = 4;
    int n_seqs, n_kv_heads, head_dim;
    std::vector<float> k, v;
    KVCacheView view;
    KvPool(int n_seqs_, int n_kv_heads_, int head_dim_) : n_seqs(n_seqs_), n_kv_heads(n_kv_heads_), head_dim(head_dim_) {
        const size_t n = size_t(n_seqs) * kMaxBlocks * kBlock * size_t(n_kv_heads) * size_t(head_dim);
        k.assign(n, 0.f);
        v.assign(n, 0.f);
        view.k = k.data();
        view.v = v.data();
        view.dtype = DType::F32;
        view.n_blocks = int64_t(n_seqs) * kMaxBlocks;
        view.n_kv_heads = n_kv_heads;
        view.head_dim = head_dim;
        view.block_size = kBlock;
    }
    int32_t block(int s, int logical) const { return int32_t((kMaxBlocks - 1 - logical) * n_seqs + s); }
};

struct Step {
    std::vector<int32_t> pos, seq, qsl, lens, tables, slots;
    StepBatch b;
    Step(const KvPool& kv, const std::vector<int>& past, const std::vector<int>& rows) {
        const int n_seqs = int(rows.size());
        qsl.push_back(0);
        int max_q = 0;
        for (int s = 0; s < n_seqs; ++s) {
            for (int i = 0; i < rows[size_t(s)]; ++i) {
                const int p = past[size_t(s)] + i;
                REQUIRE(p < KvPool::kMaxBlocks * KvPool::kBlock);
                pos.push_back(p);
                seq.push_back(s);
                slots.push_back(kv.block(s, p / KvPool::kBlock) * KvPool::kBlock + p % KvPool::kBlock);
            }
            qsl.push_back(int32_t(pos.size()));
            lens.push_back(past[size_t(s)] + rows[size_t(s)]);
            for (int blk = 0; blk < KvPool::kMaxBlocks; ++blk) tables.push_back(kv.block(s, blk));
            max_q = std::max(max_q, rows[size_t(s)]);
        }
        b.n_tokens = int64_t(pos.size());
        b.n_seqs = n_seqs;
        b.token_pos = pos.data();
        b.token_seq = seq.data();
        b.query_start_loc = qsl.data();
        b.seq_lens = lens.data();
        b.block_tables = tables.data();
        b.max_blocks = KvPool::kMaxBlocks;
        b.slot_mapping = slots.data();
        b.max_query_len = max_q;
        b.all_decode = max_q == 1;
    }
};

inline std::vector<float> uniform(std::mt19937& g, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

inline uint32_t fresh_seed() {
    static std::random_device rd;
    return rd();
}

}  // namespace imp::blocks_test
