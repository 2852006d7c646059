// The MoE FFN block (imp/blocks/moe.h): fused norm + router op -> gate|up of the selected experts (one grouped
// matmul over the file's fused 3-D weight or the gate|up stack the core builds from the two, else two) ->
// silu(gate) * up (its own kernel, or folded into the down projection when the down weight's swiglu_input()) ->
// down with the routing weights and the residual add (one weighted grouped matmul accumulating into the hidden
// state) -> optional shared expert ([plugin.core] moe_shared_slot: as one more slot of the routed launches where the
// expert weight takes it, ExpertWeights::takes_extra; with a swiglu_input() down projection, a decode step's MoE is
// then the router, one gate|up launch and one down launch).
#include "imp/blocks/moe.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "blocks/block_util.h"
#include "blocks/moe_ops.h"
#include "util/core_settings.h"
#include "imp/blocks/norm.h"
#include "imp/error.h"
#include "imp/experts.h"
#include "imp/quant_format.h"

namespace imp::blocks {

namespace {

using namespace detail;

std::atomic<uint64_t> g_shared_slot_calls{0};

WeightSpec experts_spec(const std::string& name, const std::string& pattern, int64_t n_expert, int64_t rows,
                        int64_t cols, int64_t top_k, bool optional) {
    WeightSpec s;
    s.name = name;
    s.shape = {n_expert, rows, cols};
    s.use = WeightSpec::Use::Experts;
    s.expert_pattern = pattern;
    s.top_k = top_k;
    s.optional = optional;
    return s;
}

class MoeFfn final : public Layer {
public:
    explicit MoeFfn(const MoeSpec& s) : s_(s) {
        const std::string me = who(s.kind, s.names, s.layer);
        positive(me, "n_embd", s.n_embd);
        positive(me, "n_expert", s.n_expert);
        positive(me, "n_ff_exp", s.n_ff_exp);
        if (s.top_k < 1 || s.top_k > s.n_expert)
            throw Error(me + ": top_k " + std::to_string(s.top_k) + " must be in [1, n_expert = " +
                        std::to_string(s.n_expert) + "]");
        if (s.n_ff_shared < 0) throw Error(me + ": n_ff_shared must not be negative");
        if (!s.registry) throw Error(me + ": built without a registry (MoeSpec::registry) to resolve its ops");
        if (!s.registry->find_op(MoeRouter::name, DeviceKind::CPU))
            throw Error(me + ": op '" + std::string(MoeRouter::name) +
                        "' is not registered (call imp::blocks::register_moe_ops from the plugin's register function)");
        router_ = s.registry->op<MoeRouter>();
        row_scale_ = s.registry->op<RowScale>();
        shared_slot_ = core_settings(*s.registry).moe_shared_slot && s.n_ff_shared == s.n_ff_exp;
        const auto pat = [&](const char* role) { return s.names.has(role) ? s.names(role, s.layer) : std::string(); };
        n_router_ = s.names("ffn_gate_inp", s.layer);
        n_gate_ = s.names("ffn_gate_exps", s.layer);
        n_up_ = s.names("ffn_up_exps", s.layer);
        n_down_ = s.names("ffn_down_exps", s.layer);
        p_gate_ = pat("ffn_gate_exps.e");
        p_up_ = pat("ffn_up_exps.e");
        p_down_ = pat("ffn_down_exps.e");
        n_gate_up_ = pat("ffn_gate_up_exps");
        n_gate_up_cat_ = s.names.prefix(s.layer) + "ffn_gate_up_exps.fused";
        if (s.n_ff_shared > 0) {
            n_sh_gate_ = s.names("ffn_gate_shexp", s.layer);
            n_sh_up_ = s.names("ffn_up_shexp", s.layer);
            n_sh_down_ = s.names("ffn_down_shexp", s.layer);
            n_sh_gate_up_ = s.names.prefix(s.layer) + "ffn_gate_up_shexp.fused";
            if (s.shared_gate) n_sh_inp_ = s.names("ffn_gate_inp_shexp", s.layer);
        }
        norm_ = norm_weight(s.source, s.names("ffn_norm", s.layer), s.n_embd, s.norm_offset, me);
        s_.source = nullptr;
        s_.registry = nullptr;
    }

    std::string kind() const override { return s_.kind; }
    std::vector<std::string> required_ops() const override { return {MoeRouter::name, RowScale::name}; }

    std::vector<WeightSpec> weight_specs() const override {
        const int64_t e = s_.n_embd, f = s_.n_ff_exp, ne = s_.n_expert, k = s_.top_k;
        WeightSpec router;
        router.name = n_router_;
        router.shape = {ne, e};
        router.use = WeightSpec::Use::Vector;  // fp32 on the device: the fused router kernel reads it directly
        std::vector<WeightSpec> w{norm_, router};
        // gate and up are optional when the fused gate|up tensor exists (bind() checks that one form loaded)
        const bool fused_possible = !n_gate_up_.empty();
        if (fused_possible) w.push_back(experts_spec(n_gate_up_, "", ne, 2 * f, e, k, true));
        w.push_back(experts_spec(n_gate_, p_gate_, ne, f, e, k, fused_possible));
        w.push_back(experts_spec(n_up_, p_up_, ne, f, e, k, fused_possible));
        w.push_back(experts_spec(n_down_, p_down_, ne, e, f, k, false));
        WeightSpec cat = experts_spec(n_gate_up_cat_, "", ne, 2 * f, e, k, false);  // built by the core when it can
        cat.concat = {n_gate_, n_up_};
        w.push_back(cat);
        if (s_.n_ff_shared > 0) {
            const int64_t fs = s_.n_ff_shared;
            w.push_back(matrix(n_sh_gate_, fs, e));
            w.push_back(matrix(n_sh_up_, fs, e));
            w.push_back(matrix(n_sh_down_, e, fs));
            w.push_back(fused(n_sh_gate_up_, 2 * fs, e, {n_sh_gate_, n_sh_up_}));
            if (s_.shared_gate) {
                WeightSpec g = vector(n_sh_inp_, e);
                if (!s_.shared_gate_shape.empty()) g.shape = s_.shared_gate_shape;
                w.push_back(g);
            }
        }
        return w;
    }

    void bind(const WeightSet& w) override {
        wnorm_ = need_vector(w, norm_.name);
        wrouter_ = need_vector(w, n_router_);
        gate_up_ = n_gate_up_.empty() ? nullptr : w.experts(n_gate_up_);
        if (!gate_up_) gate_up_ = w.experts(n_gate_up_cat_);
        gate_ = w.experts(n_gate_);
        up_ = w.experts(n_up_);
        down_ = w.experts(n_down_);
        if (!gate_up_ && (!gate_ || !up_))
            throw Error(who(s_.kind, s_.names, s_.layer) + ": expert weights '" + n_gate_ + "' and '" + n_up_ + "'" +
                        (n_gate_up_.empty() ? "" : " (or the fused '" + n_gate_up_ + "')") + " were not loaded");
        if (!down_) throw Error("layer weight '" + n_down_ + "' was not loaded");
        if (gate_up_) gate_ = up_ = nullptr;
        if (s_.n_ff_shared > 0) {
            sh_gate_up_ = w.matrix(n_sh_gate_up_);
            if (!sh_gate_up_) {
                sh_gate_ = &need_matrix(w, n_sh_gate_);
                sh_up_ = &need_matrix(w, n_sh_up_);
            }
            sh_down_ = &need_matrix(w, n_sh_down_);
            if (s_.shared_gate) wsg_ = need_vector(w, n_sh_inp_);
        }
        prefetch_ = weight_ranges();
    }

    // xn [n, e] | ids [n, k] (int32) | weights [n, k] | shared gate [n] | gate|up [pair_rows(n), 2 max(f, fs)] |
    // act [pair_rows(n), max(f, fs)]
    int64_t scratch_floats(int64_t n) const override {
        const int64_t k = s_.top_k, f = std::max(s_.n_ff_exp, s_.n_ff_shared), rows = pair_rows(n);
        return aligned(n * s_.n_embd) + 2 * aligned(n * k) + aligned(n) + aligned(rows * 2 * f) + aligned(rows * f);
    }

    // Queued from the ranges bind() collected (decode hot path: no allocation, no virtual calls per step).
    void prefetch_weights(Executor& ex) const override {
        if (!prefetch_.empty()) ex.prefetch_l2(prefetch_.data(), prefetch_.size());
    }

    // The router rows (fp32) and the shared expert: the routed experts are picked at run time.
    std::vector<DeviceRange> weight_ranges() const {
        std::vector<DeviceRange> r;
        r.push_back({wrouter_, size_t(s_.n_expert) * size_t(s_.n_embd) * sizeof(float)});
        if (wsg_) r.push_back({wsg_, size_t(s_.n_embd) * sizeof(float)});
        for (const Weight* w : {sh_gate_up_ ? sh_gate_up_ : sh_gate_, sh_gate_up_ ? nullptr : sh_up_, sh_down_})
            if (w) w->device_ranges(r);
        return r;
    }

    void forward(LayerContext& ctx, float* hidden) override {
        Executor& ex = ctx.ex;
        const int64_t n = ctx.batch.n_tokens, e = s_.n_embd, f = s_.n_ff_exp, k = s_.top_k;
        const int64_t fmax = std::max(f, s_.n_ff_shared), rows = n * k;
        float* xn = ctx.scratch;
        auto* ids = reinterpret_cast<int32_t*>(xn + aligned(n * e));
        float* wts = xn + aligned(n * e) + aligned(n * k);
        float* sg = wts + aligned(n * k);
        float* gu = sg + aligned(n);
        float* act = gu + aligned(pair_rows(n) * 2 * fmax);
        // The shared expert as slot top_k of the routed launches (ExpertMatmul::extra): its gate|up rows follow the
        // pairs' in gu, its SwiGLU rows the pairs' in act (unless the down projection reads [gate | up] itself), and
        // the down projection adds it with its gate.
        const bool slot = shared_slot_ && sh_gate_up_ && gate_up_ &&
                          gate_up_->takes_extra(*sh_gate_up_, n, k) && down_->takes_extra(*sh_down_, n, k);
        const int64_t act_rows = slot ? rows + n : rows;
        if (slot) g_shared_slot_calls.fetch_add(1, std::memory_order_relaxed);
        // the RMSNorm in the router launch: xn for the experts, the routing from it
        router_(ex, {hidden, e, wrouter_, n, e, s_.n_expert, s_.top_k, s_.norm_topk, s_.weights_scale, wsg_, ids, wts,
                     sg, wnorm_, s_.eps, xn});
        ExpertMatmul m;
        m.x = xn;
        m.x_stride = e;
        m.ids = ids;
        m.n_tokens = n;
        m.top_k = k;
        m.y = gu;
        m.y_stride = 2 * f;
        if (slot) m.extra = sh_gate_up_;
        if (gate_up_) {
            gate_up_->grouped_matmul(ex, m);
        } else {
            gate_->grouped_matmul(ex, m);
            m.y = gu + f;
            up_->grouped_matmul(ex, m);
        }
        ExpertMatmul d;
        if (down_->swiglu_input()) {  // the down projection reads [gate | up] and applies silu(gate) * up itself
            d.x = gu;
            d.x_stride = 2 * f;
            d.x_swiglu = true;
        } else {
            ex.swiglu(gu, 2 * f, gu + f, 2 * f, act, act_rows, f);
            d.x = act;
            d.x_stride = f;
        }
        if (slot) {
            d.extra = sh_down_;
            d.extra_weights = wsg_ ? sg : nullptr;
        }
        d.x_per_slot = true;
        d.ids = ids;
        d.weights = wts;
        d.n_tokens = n;
        d.top_k = k;
        d.y = hidden;
        d.y_stride = e;
        d.accumulate = true;  // residual: hidden += sum_j w_j down_j(act_j)
        down_->grouped_matmul(ex, d);
        if (s_.n_ff_shared > 0 && !slot) shared_expert(ex, xn, gu, act, sg, n, hidden);
    }

private:
    // Rows of the gate|up and act buffers: n k pairs, and with moe_shared_slot n more (the shared expert as one more
    // slot, after the pairs' rows). The shared expert on its own path uses their first n rows (n <= n k).
    int64_t pair_rows(int64_t n) const { return n * s_.top_k + (shared_slot_ ? n : 0); }

    void shared_expert(Executor& ex, const float* xn, float* gu, float* act, const float* sg, int64_t n,
                       float* hidden) const {
        const int64_t e = s_.n_embd, fs = s_.n_ff_shared;
        if (sh_gate_up_) {
            sh_gate_up_->matmul(ex, xn, e, gu, 2 * fs, n, false);
        } else {
            sh_gate_->matmul(ex, xn, e, gu, 2 * fs, n, false);
            sh_up_->matmul(ex, xn, e, gu + fs, 2 * fs, n, false);
        }
        ex.swiglu(gu, 2 * fs, gu + fs, 2 * fs, act, n, fs);
        if (wsg_) row_scale_(ex, {act, fs, sg, n, fs});  // down(g * a) = g * down(a)
        sh_down_->matmul(ex, act, fs, hidden, e, n, true);
    }

    MoeSpec s_;
    bool shared_slot_ = false;  // [plugin.core] moe_shared_slot, and the shared expert has the experts' width
    OpRef<MoeRouter> router_;
    OpRef<RowScale> row_scale_;
    std::string n_router_, n_gate_, n_up_, n_down_, p_gate_, p_up_, p_down_, n_gate_up_, n_gate_up_cat_;
    std::string n_sh_gate_, n_sh_up_, n_sh_down_, n_sh_gate_up_, n_sh_inp_;
    WeightSpec norm_;
    const float *wnorm_ = nullptr, *wrouter_ = nullptr, *wsg_ = nullptr;
    const ExpertWeights *gate_ = nullptr, *up_ = nullptr, *down_ = nullptr, *gate_up_ = nullptr;
    const Weight *sh_gate_ = nullptr, *sh_up_ = nullptr, *sh_down_ = nullptr, *sh_gate_up_ = nullptr;
    std::vector<DeviceRange> prefetch_;  // weight_ranges(), from bind()
};

}  // namespace

std::unique_ptr<Layer> make_moe(const MoeSpec& spec) { return std::make_unique<MoeFfn>(spec); }

namespace moe_detail {
uint64_t shared_slot_calls() { return g_shared_slot_calls.load(); }
}  // namespace moe_detail

bool is_moe_layer(int layer, const std::vector<int64_t>& mlp_only_layers, int64_t decoder_sparse_step) {
    if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), int64_t(layer)) != mlp_only_layers.end())
        return false;
    return decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
}

void add_moe_gguf_names(NameMap& m) {
    for (const char* r : {"ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_up_exps", "ffn_gate_shexp",
                          "ffn_up_shexp", "ffn_down_shexp", "ffn_gate_inp_shexp"})
        m.names[r] = std::string(r) + ".weight";
}

void add_moe_hf_names(NameMap& m) {
    m.names["ffn_gate_inp"] = "mlp.gate.weight";
    m.names["ffn_gate_up_exps"] = "mlp.experts.gate_up_proj";
    m.names["ffn_gate_exps"] = "mlp.experts.gate_proj";
    m.names["ffn_up_exps"] = "mlp.experts.up_proj";
    m.names["ffn_down_exps"] = "mlp.experts.down_proj";
    m.names["ffn_gate_exps.e"] = "mlp.experts.{e}.gate_proj.weight";
    m.names["ffn_up_exps.e"] = "mlp.experts.{e}.up_proj.weight";
    m.names["ffn_down_exps.e"] = "mlp.experts.{e}.down_proj.weight";
    m.names["ffn_gate_shexp"] = "mlp.shared_expert.gate_proj.weight";
    m.names["ffn_up_shexp"] = "mlp.shared_expert.up_proj.weight";
    m.names["ffn_down_shexp"] = "mlp.shared_expert.down_proj.weight";
    m.names["ffn_gate_inp_shexp"] = "mlp.shared_expert_gate.weight";
}

MoeSpec MoeSpec::from_hparams(const Metadata& hp, const std::string& prefix) {
    const auto need_int = [&](const std::string& k) {
        if (!hp.has(k)) throw Error(hp.source + ": missing hyper-parameter '" + k + "' (MoE block)");
        return hp.get_int(k);
    };
    MoeSpec s;
    s.n_embd = need_int("n_embd");
    s.eps = float(hp.get_float("norm_eps", 1e-6));
    s.n_expert = int(need_int("moe.n_expert"));
    s.top_k = int(need_int("moe.top_k"));
    s.n_ff_exp = need_int("moe.n_ff_exp");
    s.norm_topk = hp.get_bool("moe.norm_topk", true);
    s.weights_scale = float(hp.get_float("moe.weights_scale", 1.0));
    s.n_ff_shared = hp.get_int("moe.n_ff_shared", 0);
    s.shared_gate = hp.get_bool("moe.shared_gate", false);
    s.names.layer_prefix = prefix;
    const std::string np = "name.";
    for (const auto& [key, v] : hp.all())
        if (key.compare(0, np.size(), np) == 0) s.names.names[key.substr(np.size())] = v.as_string(key);
    return s;
}

}  // namespace imp::blocks
