#include "llama_layers.h"

#include <cmath>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/quant_format.h"

namespace imp::llama {

namespace {

// Scratch sub-buffers start on 64-byte boundaries.
constexpr int64_t kAlign = 16;
int64_t aligned(int64_t floats) { return (floats + kAlign - 1) / kAlign * kAlign; }

int64_t positive(const Metadata& hp, const std::string& key) {
    const int64_t v = hp.get_int(key);
    if (v <= 0) throw Error(hp.source + ": hyper-parameter '" + key + "' must be positive, got " + std::to_string(v));
    return v;
}

std::string tensor_name(const LayerParams& p, const std::string& w) { return p.prefix + p.hparams->get_string("name." + w); }

const Weight& need_matrix(const WeightSet& ws, const std::string& name) {
    const Weight* w = ws.matrix(name);
    if (!w) throw Error("layer weight '" + name + "' was not loaded");
    return *w;
}
const float* need_vector(const WeightSet& ws, const std::string& name) {
    const float* v = ws.vector(name);
    if (!v) throw Error("layer weight '" + name + "' was not loaded");
    return v;
}

WeightSpec matrix(const std::string& name, int64_t rows, int64_t cols) {
    WeightSpec s;
    s.name = name;
    s.shape = {rows, cols};
    s.use = WeightSpec::Use::Matrix;
    return s;
}
// The row concatenation of `parts` (declared separately too): one matmul instead of several with the same input.
WeightSpec fused(const std::string& name, int64_t rows, int64_t cols, std::vector<std::string> parts) {
    WeightSpec s = matrix(name, rows, cols);
    s.concat = std::move(parts);
    return s;
}
WeightSpec vector(const std::string& name, int64_t n) {
    WeightSpec s;
    s.name = name;
    s.shape = {n};
    s.use = WeightSpec::Use::Vector;
    return s;
}

// attn_norm -> q/k/v -> [q/k per-head RMSNorm] -> RoPE -> KV cache -> causal GQA attention -> o_proj -> residual.
class Attention final : public Layer {
public:
    explicit Attention(const LayerParams& p) {
        if (!p.hparams) throw Error("llama.attention: no hyper-parameters given for layer " + std::to_string(p.index));
        const Metadata& hp = *p.hparams;
        n_embd_ = positive(hp, "n_embd");
        n_head_ = int(positive(hp, "n_head"));
        n_kv_ = int(positive(hp, "n_head_kv"));
        hd_ = int(positive(hp, "head_dim"));
        eps_ = float(hp.get_float("norm_eps"));
        if (n_head_ % n_kv_ != 0)
            throw Error(hp.source + ": n_head " + std::to_string(n_head_) + " is not a multiple of n_head_kv " +
                        std::to_string(n_kv_));
        rope_.head_dim = hd_;
        rope_.n_rot = int(positive(hp, "rope.n_rot"));
        if (rope_.n_rot % 2 != 0 || rope_.n_rot > hd_)
            throw Error(hp.source + ": rope.n_rot " + std::to_string(rope_.n_rot) + " must be even and <= head_dim " +
                        std::to_string(hd_));
        rope_.base = float(hp.get_float("rope.base"));
        rope_.neox = hp.get_bool("rope.neox");
        rope_.freq_scale = float(hp.get_float("rope.freq_scale", 1.0));
        scale_ = float(hp.get_float("attn.scale", 1.0 / std::sqrt(double(hd_))));
        qk_norm_ = hp.get_bool("attn.qk_norm", false);
        freqs_name_ = hp.get_string("rope.freqs", "");
        if (auto* ff = hp.find("rope.freq_factors")) {
            for (const auto& v : ff->as_array("rope.freq_factors")) freq_values_.push_back(float(v.as_float("rope.freq_factors")));
            if (int64_t(freq_values_.size()) != rope_.n_rot / 2)
                throw Error(hp.source + ": rope.freq_factors has " + std::to_string(freq_values_.size()) +
                            " values, expected n_rot/2 = " + std::to_string(rope_.n_rot / 2));
            if (freqs_name_.empty()) throw Error(hp.source + ": rope.freq_factors given without a rope.freqs name");
        }
        n_norm_ = tensor_name(p, "attn_norm");
        n_q_ = tensor_name(p, "attn_q");
        n_k_ = tensor_name(p, "attn_k");
        n_v_ = tensor_name(p, "attn_v");
        n_o_ = tensor_name(p, "attn_output");
        n_qkv_ = p.prefix + "attn_qkv.fused";
        if (qk_norm_) {
            n_qn_ = tensor_name(p, "attn_q_norm");
            n_kn_ = tensor_name(p, "attn_k_norm");
        }
    }

    std::string kind() const override { return "llama.attention"; }

    std::vector<WeightSpec> weight_specs() const override {
        const int64_t qd = int64_t(n_head_) * hd_, kd = int64_t(n_kv_) * hd_;
        std::vector<WeightSpec> s = {vector(n_norm_, n_embd_), matrix(n_q_, qd, n_embd_), matrix(n_k_, kd, n_embd_),
                                     matrix(n_v_, kd, n_embd_), matrix(n_o_, n_embd_, qd),
                                     fused(n_qkv_, qd + 2 * kd, n_embd_, {n_q_, n_k_, n_v_})};
        if (qk_norm_) {
            s.push_back(vector(n_qn_, hd_));
            s.push_back(vector(n_kn_, hd_));
        }
        if (!freqs_name_.empty()) {
            s.push_back(vector(freqs_name_, rope_.n_rot / 2));
            s.back().values = freq_values_;
        }
        return s;
    }

    void bind(const WeightSet& w) override {
        norm_ = need_vector(w, n_norm_);
        wqkv_ = w.matrix(n_qkv_);
        if (!wqkv_) {
            wq_ = &need_matrix(w, n_q_);
            wk_ = &need_matrix(w, n_k_);
            wv_ = &need_matrix(w, n_v_);
        }
        wo_ = &need_matrix(w, n_o_);
        if (qk_norm_) {
            qn_ = need_vector(w, n_qn_);
            kn_ = need_vector(w, n_kn_);
        }
        rope_.freq_factors = freqs_name_.empty() ? nullptr : need_vector(w, freqs_name_);
    }

    StateSpec state() const override {
        StateSpec s;
        s.kind = StateSpec::Kind::KV;
        s.n_kv_heads = n_kv_;
        s.head_dim = hd_;
        return s;
    }

    // xn/o [n, n_embd] | q [n, qd] | k [n, kd] | v [n, kd] | att [n, qd]; with the fused weight, q|k|v rows
    // [n, qd + 2 kd] over the q, k and v regions.
    int64_t scratch_floats(int64_t n) const override {
        const int64_t qd = int64_t(n_head_) * hd_, kd = int64_t(n_kv_) * hd_;
        return aligned(n * n_embd_) + 2 * aligned(n * qd) + 2 * aligned(n * kd);
    }

    void forward(LayerContext& ctx, float* hidden) override {
        Executor& ex = ctx.ex;
        const int64_t n = ctx.batch.n_tokens;
        const int64_t qd = int64_t(n_head_) * hd_, kd = int64_t(n_kv_) * hd_;
        float* xn = ctx.scratch;
        float* q = xn + aligned(n * n_embd_);
        float* k = q + aligned(n * qd);
        float* v = k + aligned(n * kd);
        float* att = v + aligned(n * kd);

        ex.rms_norm(hidden, norm_, xn, n, n_embd_, eps_);
        int64_t qs = qd, ks = kd;  // row strides of q and k/v
        if (wqkv_) {
            qs = ks = qd + 2 * kd;
            wqkv_->matmul(ex, xn, n_embd_, q, qs, n, false);
            k = q + qd;
            v = k + kd;
        } else {
            wq_->matmul(ex, xn, n_embd_, q, qd, n, false);
            wk_->matmul(ex, xn, n_embd_, k, kd, n, false);
            wv_->matmul(ex, xn, n_embd_, v, kd, n, false);
        }
        // [q/k per-head RMSNorm] -> RoPE(q), RoPE(k) -> k, v into the KV cache, in one op.
        ex.rope_kv_store(q, qs, k, ks, v, ks, qn_, kn_, eps_, ctx.batch, n_head_, n_kv_, rope_, ctx.kv);
        AttentionParams ap;
        ap.n_head = n_head_;
        ap.n_kv_head = n_kv_;
        ap.head_dim = hd_;
        ap.scale = scale_;
        ex.attention(q, qs, ctx.kv, att, ap, ctx.batch);
        wo_->matmul(ex, att, qd, hidden, n_embd_, n, true);  // residual: hidden += o_proj(att)
    }

private:
    int64_t n_embd_ = 0;
    int n_head_ = 0, n_kv_ = 0, hd_ = 0;
    float eps_ = 1e-5f, scale_ = 1.f;
    bool qk_norm_ = false;
    RopeParams rope_;
    std::string freqs_name_;
    std::vector<float> freq_values_;
    std::string n_norm_, n_q_, n_k_, n_v_, n_o_, n_qn_, n_kn_, n_qkv_;
    const float* norm_ = nullptr;
    const float* qn_ = nullptr;
    const float* kn_ = nullptr;
    const Weight *wq_ = nullptr, *wk_ = nullptr, *wv_ = nullptr, *wo_ = nullptr;
    const Weight* wqkv_ = nullptr;  // q|k|v rows in one weight, when the core could build it
};

// ffn_norm -> gate, up -> silu(gate) * up -> down -> residual.
class Ffn final : public Layer {
public:
    explicit Ffn(const LayerParams& p) {
        if (!p.hparams) throw Error("llama.ffn: no hyper-parameters given for layer " + std::to_string(p.index));
        const Metadata& hp = *p.hparams;
        n_embd_ = positive(hp, "n_embd");
        n_ff_ = positive(hp, "n_ff");
        eps_ = float(hp.get_float("norm_eps"));
        n_norm_ = tensor_name(p, "ffn_norm");
        n_gate_ = tensor_name(p, "ffn_gate");
        n_up_ = tensor_name(p, "ffn_up");
        n_down_ = tensor_name(p, "ffn_down");
        n_gate_up_ = p.prefix + "ffn_gate_up.fused";
    }

    std::string kind() const override { return "llama.ffn"; }

    std::vector<WeightSpec> weight_specs() const override {
        return {vector(n_norm_, n_embd_), matrix(n_gate_, n_ff_, n_embd_), matrix(n_up_, n_ff_, n_embd_),
                matrix(n_down_, n_embd_, n_ff_), fused(n_gate_up_, 2 * n_ff_, n_embd_, {n_gate_, n_up_})};
    }

    void bind(const WeightSet& w) override {
        norm_ = need_vector(w, n_norm_);
        gate_up_ = w.matrix(n_gate_up_);
        if (!gate_up_) {
            gate_ = &need_matrix(w, n_gate_);
            up_ = &need_matrix(w, n_up_);
        }
        down_ = &need_matrix(w, n_down_);
    }

    // xn [n, n_embd] | gate [n, n_ff] | up [n, n_ff] | act [n, n_ff]; with the fused weight, gate|up rows
    // [n, 2 n_ff] over the gate and up regions. act = silu(gate) * up.
    int64_t scratch_floats(int64_t n) const override { return aligned(n * n_embd_) + 3 * aligned(n * n_ff_); }

    void forward(LayerContext& ctx, float* hidden) override {
        Executor& ex = ctx.ex;
        const int64_t n = ctx.batch.n_tokens;
        float* xn = ctx.scratch;
        float* g = xn + aligned(n * n_embd_);
        float* u = g + aligned(n * n_ff_);
        float* act = u + aligned(n * n_ff_);
        ex.rms_norm(hidden, norm_, xn, n, n_embd_, eps_);
        int64_t gs = n_ff_;  // row stride of gate and up
        if (gate_up_) {
            gs = 2 * n_ff_;
            gate_up_->matmul(ex, xn, n_embd_, g, gs, n, false);
            u = g + n_ff_;
        } else {
            gate_->matmul(ex, xn, n_embd_, g, n_ff_, n, false);
            up_->matmul(ex, xn, n_embd_, u, n_ff_, n, false);
        }
        ex.swiglu(g, gs, u, gs, act, n, n_ff_);
        down_->matmul(ex, act, n_ff_, hidden, n_embd_, n, true);  // residual: hidden += down(act)
    }

private:
    int64_t n_embd_ = 0, n_ff_ = 0;
    float eps_ = 1e-5f;
    std::string n_norm_, n_gate_, n_up_, n_down_, n_gate_up_;
    const float* norm_ = nullptr;
    const Weight *gate_ = nullptr, *up_ = nullptr, *down_ = nullptr;
    const Weight* gate_up_ = nullptr;  // gate|up rows in one weight, when the core could build it
};

}  // namespace

std::unique_ptr<Layer> make_attention(const LayerParams& p) { return std::make_unique<Attention>(p); }
std::unique_ptr<Layer> make_ffn(const LayerParams& p) { return std::make_unique<Ffn>(p); }

}  // namespace imp::llama
