// The SwiGLU FFN block (imp/blocks/ffn.h): norm -> gate|up -> silu(gate) * up -> down with the residual add; the
// first three in one call where the fused gate|up weight's format can (Weight::matmul_fused), else the norm into
// gate|up and the SwiGLU into down where their formats can.
#include "imp/blocks/ffn.h"

#include <string>
#include <vector>

#include "blocks/block_util.h"
#include "imp/blocks/norm.h"
#include "imp/error.h"
#include "imp/quant_format.h"

namespace imp::blocks {

namespace {

using namespace detail;

class SwigluFfn final : public Layer {
public:
    explicit SwigluFfn(const FfnSpec& s) : s_(s) {
        const std::string me = who(s.kind, s.names, s.layer);
        positive(me, "n_embd", s.n_embd);
        positive(me, "n_ff", s.n_ff);
        n_gate_ = s.names("ffn_gate", s.layer);
        n_up_ = s.names("ffn_up", s.layer);
        n_down_ = s.names("ffn_down", s.layer);
        n_gate_up_ = s.names.prefix(s.layer) + "ffn_gate_up.fused";
        norm_ = norm_weight(s.source, s.names("ffn_norm", s.layer), s.n_embd, s.norm_offset, me);
        s_.source = nullptr;  // read above; not kept
    }

    std::string kind() const override { return s_.kind; }

    std::vector<WeightSpec> weight_specs() const override {
        const int64_t e = s_.n_embd, f = s_.n_ff;
        return {norm_, matrix(n_gate_, f, e), matrix(n_up_, f, e), matrix(n_down_, e, f),
                fused(n_gate_up_, 2 * f, e, {n_gate_, n_up_})};
    }

    void bind(const WeightSet& w) override {
        wnorm_ = need_vector(w, norm_.name);
        gate_up_ = w.matrix(n_gate_up_);
        if (!gate_up_) {
            gate_ = &need_matrix(w, n_gate_);
            up_ = &need_matrix(w, n_up_);
        }
        down_ = &need_matrix(w, n_down_);
        prefetch_ = weight_ranges();
    }

    // xn [n, n_embd] | gate [n, n_ff] | up [n, n_ff] | act [n, n_ff]; with the fused weight, gate|up rows
    // [n, 2 n_ff] over the gate and up regions. act = silu(gate) * up.
    int64_t scratch_floats(int64_t n) const override { return aligned(n * s_.n_embd) + 3 * aligned(n * s_.n_ff); }

    // Queued from the ranges bind() collected (decode hot path: no allocation, no virtual calls per step).
    void prefetch_weights(Executor& ex) const override {
        if (!prefetch_.empty()) ex.prefetch_l2(prefetch_.data(), prefetch_.size());
    }

    // gate|up (or gate, up) and down
    std::vector<DeviceRange> weight_ranges() const {
        std::vector<DeviceRange> r;
        for (const Weight* w : {gate_up_ ? gate_up_ : gate_, gate_up_ ? nullptr : up_, down_})
            if (w) w->device_ranges(r);
        return r;
    }

    void forward(LayerContext& ctx, float* hidden) override {
        Executor& ex = ctx.ex;
        const int64_t n = ctx.batch.n_tokens, e = s_.n_embd, f = s_.n_ff;
        float* xn = ctx.scratch;
        float* g = xn + aligned(n * e);
        float* u = g + aligned(n * f);
        float* act = u + aligned(n * f);
        // norm -> gate|up -> SwiGLU in as few kernels as the fused weight's format can (Weight::matmul_fused): all
        // three, or norm + gate|up, or (after the norm) gate|up + SwiGLU; else one op each.
        auto fused = [&](const float* x, bool norm, bool swiglu) {
            FusedMatmul fm;
            fm.x = x, fm.x_stride = e, fm.n_tokens = n;
            fm.y = swiglu ? act : g, fm.y_stride = swiglu ? f : 2 * f;
            fm.norm = norm ? wnorm_ : nullptr, fm.norm_eps = s_.eps, fm.swiglu = swiglu;
            return gate_up_ && gate_up_->matmul_fused(ex, fm);
        };
        bool have_act = fused(hidden, true, true), have_gu = !have_act && fused(hidden, true, false);
        if (!have_act && !have_gu) {
            ex.rms_norm(hidden, wnorm_, xn, n, e, s_.eps);
            have_act = fused(xn, false, true);
        }
        if (!have_act) {
            int64_t gs = f;  // row stride of gate and up
            if (gate_up_) {
                gs = 2 * f;
                if (!have_gu) gate_up_->matmul(ex, xn, e, g, gs, n, false);
                u = g + f;
            } else {
                gate_->matmul(ex, xn, e, g, f, n, false);
                up_->matmul(ex, xn, e, u, f, n, false);
            }
            // The SwiGLU into the down projection's input where its format can (a GEMM's bf16 conversion).
            FusedMatmul fm;
            fm.x = g, fm.up = u, fm.x_stride = gs, fm.n_tokens = n;
            fm.y = hidden, fm.y_stride = e, fm.accumulate = true;
            if (down_->matmul_fused(ex, fm)) return;  // residual: hidden += down(silu(g) * u)
            ex.swiglu(g, gs, u, gs, act, n, f);
        }
        down_->matmul(ex, act, f, hidden, e, n, true);  // residual: hidden += down(act)
    }

private:
    FfnSpec s_;
    std::string n_gate_, n_up_, n_down_, n_gate_up_;
    WeightSpec norm_;  // with the offset folded in when norm_offset != 0
    const float* wnorm_ = nullptr;
    const Weight *gate_ = nullptr, *up_ = nullptr, *down_ = nullptr;
    const Weight* gate_up_ = nullptr;  // gate|up rows in one weight, when the core could build it
    std::vector<DeviceRange> prefetch_;  // weight_ranges(), from bind()
};

}  // namespace

std::unique_ptr<Layer> make_swiglu_ffn(const FfnSpec& spec) { return std::make_unique<SwigluFfn>(spec); }

}  // namespace imp::blocks
