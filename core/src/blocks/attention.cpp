// The attention block (imp/blocks/attention.h): norm -> q|k|v -> [output-gate split] -> [q/k norm] -> RoPE -> KV
// cache -> causal GQA attention -> [sigmoid gate] -> o_proj with the residual add, on the Executor's ops (norm and
// the fused q|k|v in one call where its format can: Weight::matmul_fused). When v is stored in another type than q
// and k (llama.cpp's Q4_K_M: Q6_K v in some layers), q|k are fused and v runs on its own.
#include "imp/blocks/attention.h"

#include <cmath>
#include <string>
#include <vector>

#include "blocks/block_util.h"
#include "blocks/gate_ops.h"
#include "imp/blocks/norm.h"
#include "imp/error.h"
#include "imp/quant_format.h"

namespace imp::blocks {

namespace {

using namespace detail;

class Attention final : public Layer {
public:
    explicit Attention(const AttentionSpec& s) : s_(s) {
        const std::string me = who(s.kind, s.names, s.layer);
        positive(me, "n_embd", s.n_embd);
        positive(me, "n_head", s.n_head);
        positive(me, "n_kv_head", s.n_kv_head);
        positive(me, "head_dim", s.head_dim);
        if (s.n_head % s.n_kv_head != 0)
            throw Error(me + ": n_head " + std::to_string(s.n_head) + " is not a multiple of n_kv_head " +
                        std::to_string(s.n_kv_head));
        hd_ = s.head_dim;
        rope_.head_dim = hd_;
        rope_.n_rot = s.rope.n_rot == 0 ? hd_ : s.rope.n_rot;
        if (rope_.n_rot < 0 || rope_.n_rot % 2 != 0 || rope_.n_rot > hd_)
            throw Error(me + ": rope.n_rot " + std::to_string(rope_.n_rot) + " must be even and <= head_dim " +
                        std::to_string(hd_));
        rope_.base = s.rope.base;
        rope_.neox = s.rope.neox;
        rope_.freq_scale = s.rope.freq_scale;
        if (!s.rope.freq_factors.empty()) {
            if (int64_t(s.rope.freq_factors.size()) != rope_.n_rot / 2)
                throw Error(me + ": rope.freq_factors has " + std::to_string(s.rope.freq_factors.size()) +
                            " values, expected n_rot/2 = " + std::to_string(rope_.n_rot / 2));
            if (s.rope.freqs_name.empty()) throw Error(me + ": rope.freq_factors given without a rope.freqs_name");
        }
        scale_ = s.scale > 0 ? s.scale : float(1.0 / std::sqrt(double(hd_)));
        qd_ = int64_t(s.n_head) * hd_;
        kd_ = int64_t(s.n_kv_head) * hd_;
        q_rows_ = s.output_gate ? 2 * qd_ : qd_;
        n_q_ = s.names("attn_q", s.layer);
        n_k_ = s.names("attn_k", s.layer);
        n_v_ = s.names("attn_v", s.layer);
        n_o_ = s.names("attn_output", s.layer);
        n_qkv_ = s.names.prefix(s.layer) + "attn_qkv.fused";
        n_qk_ = s.names.prefix(s.layer) + "attn_qk.fused";
        if (s.source) {  // a fused weight takes parts of one storage type: q|k when only v differs
            const TensorInfo *tq = s.source->find(n_q_), *tk = s.source->find(n_k_), *tv = s.source->find(n_v_);
            qk_only_ = tq && tk && tv && tq->type == tk->type && tv->type != tq->type;
        }
        norm_ = norm_weight(s.source, s.names("attn_norm", s.layer), s.n_embd, s.norm_offset, me);
        if (s.qk_norm) {
            q_norm_ = norm_weight(s.source, s.names("attn_q_norm", s.layer), hd_, s.norm_offset, me);
            k_norm_ = norm_weight(s.source, s.names("attn_k_norm", s.layer), hd_, s.norm_offset, me);
        }
        s_.source = nullptr;  // read above; not kept
    }

    std::string kind() const override { return s_.kind; }

    std::vector<WeightSpec> weight_specs() const override {
        std::vector<WeightSpec> w = {norm_,
                                     matrix(n_q_, q_rows_, s_.n_embd),
                                     matrix(n_k_, kd_, s_.n_embd),
                                     matrix(n_v_, kd_, s_.n_embd),
                                     matrix(n_o_, s_.n_embd, qd_),
                                     qk_only_ ? fused(n_qk_, q_rows_ + kd_, s_.n_embd, {n_q_, n_k_})
                                              : fused(n_qkv_, q_rows_ + 2 * kd_, s_.n_embd, {n_q_, n_k_, n_v_})};
        if (s_.qk_norm) {
            w.push_back(q_norm_);
            w.push_back(k_norm_);
        }
        if (!s_.rope.freqs_name.empty()) {
            w.push_back(vector(s_.rope.freqs_name, rope_.n_rot / 2));
            w.back().values = s_.rope.freq_factors;
        }
        return w;
    }

    void bind(const WeightSet& w) override {
        wnorm_ = need_vector(w, norm_.name);
        wqkv_ = qk_only_ ? nullptr : w.matrix(n_qkv_);
        wqk_ = qk_only_ ? w.matrix(n_qk_) : nullptr;
        if (!wqkv_) {
            if (!wqk_) {
                wq_ = &need_matrix(w, n_q_);
                wk_ = &need_matrix(w, n_k_);
            }
            wv_ = &need_matrix(w, n_v_);
        }
        wo_ = &need_matrix(w, n_o_);
        if (s_.qk_norm) {
            wqn_ = need_vector(w, q_norm_.name);
            wkn_ = need_vector(w, k_norm_.name);
        }
        rope_.freq_factors = s_.rope.freqs_name.empty() ? nullptr : need_vector(w, s_.rope.freqs_name);
        prefetch_ = weight_ranges();
    }

    StateSpec state() const override {
        StateSpec s;
        s.kind = StateSpec::Kind::KV;
        s.n_kv_heads = s_.n_kv_head;
        s.head_dim = hd_;
        return s;
    }

    // xn [n, n_embd] | q [n, q_rows] | k [n, kd] | v [n, kd] | att [n, qd] [| qc [n, qd] with the output gate].
    // With the fused weight, q|k|v rows [n, q_rows + 2 kd] over the q, k and v regions (q|k: [n, q_rows + kd] over
    // the q and k regions, v in its own). q_rows = 2 qd with the
    // output gate (query and gate interleaved per head; qc holds the queries, contiguous).
    int64_t scratch_floats(int64_t n) const override {
        return aligned(n * s_.n_embd) + aligned(n * q_rows_) + 2 * aligned(n * kd_) + aligned(n * qd_) +
               (s_.output_gate ? aligned(n * qd_) : 0);
    }

    // Queued from the ranges bind() collected (decode hot path: no allocation, no virtual calls per step).
    void prefetch_weights(Executor& ex) const override {
        if (!prefetch_.empty()) ex.prefetch_l2(prefetch_.data(), prefetch_.size());
    }

    // q|k|v (or q, k, v) and o
    std::vector<DeviceRange> weight_ranges() const {
        std::vector<DeviceRange> r;
        for (const Weight* w : {wqkv_ ? wqkv_ : wqk_ ? wqk_ : wq_, wqkv_ || wqk_ ? nullptr : wk_,
                                wqkv_ ? nullptr : wv_, wo_})
            if (w) w->device_ranges(r);
        return r;
    }

    void forward(LayerContext& ctx, float* hidden) override {
        Executor& ex = ctx.ex;
        const int64_t n = ctx.batch.n_tokens;
        float* xn = ctx.scratch;
        float* q = xn + aligned(n * s_.n_embd);
        float* k = q + aligned(n * q_rows_);
        float* v = k + aligned(n * kd_);
        float* att = v + aligned(n * kd_);

        int64_t qs = q_rows_, ks = kd_, vs = kd_;  // row strides of q, k and v
        if (wqkv_) {
            qs = ks = vs = q_rows_ + 2 * kd_;
            k = q + q_rows_;
            v = k + kd_;
        } else if (wqk_) {
            qs = ks = q_rows_ + kd_;
            k = q + q_rows_;
        }
        // norm -> q|k|v: each matrix takes the RMSNorm into its GEMV where its format can (Weight::matmul_fused);
        // the others read xn, normalized once.
        const Weight* mats[3] = {wqkv_ ? wqkv_ : wqk_ ? wqk_ : wq_, wqkv_ || wqk_ ? nullptr : wk_,
                                 wqkv_ ? nullptr : wv_};
        float* outs[3] = {q, k, v};
        const int64_t strides[3] = {qs, ks, vs};
        bool done[3] = {false, false, false}, all = true;
        for (int i = 0; i < 3; ++i) {
            if (!mats[i]) continue;
            FusedMatmul fm;
            fm.x = hidden, fm.x_stride = s_.n_embd, fm.y = outs[i], fm.y_stride = strides[i], fm.n_tokens = n;
            fm.norm = wnorm_, fm.norm_eps = s_.eps;
            done[i] = mats[i]->matmul_fused(ex, fm);
            all = all && done[i];
        }
        if (!all) {
            ex.rms_norm(hidden, wnorm_, xn, n, s_.n_embd, s_.eps);
            for (int i = 0; i < 3; ++i)
                if (mats[i] && !done[i]) mats[i]->matmul(ex, xn, s_.n_embd, outs[i], strides[i], n, false);
        }
        const float* qg = q;  // query|gate per head, when gated
        const int64_t qg_stride = qs;
        if (s_.output_gate) {
            float* qc = att + aligned(n * qd_);
            ops::split_gated_q(ex, qg, qs, qc, n, s_.n_head, hd_);
            q = qc;
            qs = qd_;
        }
        // [q/k per-head RMSNorm] -> RoPE(q), RoPE(k) -> k, v into the KV cache, in one op.
        ex.rope_kv_store(q, qs, k, ks, v, vs, wqn_, wkn_, s_.eps, ctx.batch, s_.n_head, s_.n_kv_head, rope_, ctx.kv);
        AttentionParams ap;
        ap.n_head = s_.n_head;
        ap.n_kv_head = s_.n_kv_head;
        ap.head_dim = hd_;
        ap.scale = scale_;
        ex.attention(q, qs, ctx.kv, att, ap, ctx.batch);
        if (s_.output_gate) ops::apply_output_gate(ex, att, qg, qg_stride, n, s_.n_head, hd_);
        wo_->matmul(ex, att, qd_, hidden, s_.n_embd, n, true);  // residual: hidden += o_proj(att)
    }

private:
    AttentionSpec s_;
    int hd_ = 0;
    int64_t qd_ = 0, kd_ = 0, q_rows_ = 0;
    float scale_ = 1.f;
    RopeParams rope_;
    std::string n_q_, n_k_, n_v_, n_o_, n_qkv_, n_qk_;
    bool qk_only_ = false;  // v stored in another type than q and k: fuse q|k only
    WeightSpec norm_, q_norm_, k_norm_;  // Vector specs, with the offset folded in when norm_offset != 0
    const float* wnorm_ = nullptr;
    const float* wqn_ = nullptr;
    const float* wkn_ = nullptr;
    const Weight *wq_ = nullptr, *wk_ = nullptr, *wv_ = nullptr, *wo_ = nullptr;
    const Weight* wqkv_ = nullptr;  // q|k|v rows in one weight, when the core could build it
    const Weight* wqk_ = nullptr;   // q|k rows in one weight (qk_only_), when the core could build it
    std::vector<DeviceRange> prefetch_;  // weight_ranges(), from bind()
};

}  // namespace

std::unique_ptr<Layer> make_attention(const AttentionSpec& spec) { return std::make_unique<Attention>(spec); }

}  // namespace imp::blocks
