// arch_gdn: the Gated DeltaNet mixer layer (gdn_layer.h) on the registered gdn.* ops.
#include "gdn_layer.h"

#include <cmath>
#include <string>
#include <vector>

#include "imp/blocks/norm.h"
#include "imp/error.h"
#include "imp/quant_format.h"
#include "regroup_op.h"

namespace imp::gdn_arch {

namespace {

constexpr int64_t kAlign = 16;  // scratch sub-buffers on 64-byte boundaries
int64_t aligned(int64_t floats) { return (floats + kAlign - 1) / kAlign * kAlign; }

WeightSpec matrix(const std::string& name, int64_t rows, int64_t cols) {
    WeightSpec s;
    s.name = name;
    s.shape = {rows, cols};
    return s;
}
WeightSpec vec(const std::string& name, std::vector<int64_t> shape) {
    WeightSpec s;
    s.name = name;
    s.shape = std::move(shape);
    s.use = WeightSpec::Use::Vector;
    return s;
}

// One projection part (a file tensor) and the matmul groups: adjacent parts of one storage type in one weight.
struct Part {
    std::string name;
    int64_t rows = 0, col = 0;  // its rows land in columns [col, col + rows) of the projection row
};
struct Group {
    size_t first = 0, count = 0;  // parts[first, first + count)
    std::string fused;            // the concat weight's name when count > 1
    int64_t rows = 0, col = 0;
    const Weight* w = nullptr;    // the fused weight when the core built it
};

class GdnLayer final : public Layer {
public:
    explicit GdnLayer(const GdnSpec& s) : s_(s) {
        const std::string me = s.kind + " (" + s.names.block(s.layer) + ")";
        const gdn::Dims& d = s.dims;
        if (s.n_embd <= 0 || d.n_k_heads <= 0 || d.n_v_heads <= 0 || d.head_k_dim <= 0 || d.head_v_dim <= 0 ||
            d.n_v_heads % d.n_k_heads != 0 || s.conv_kernel < 2)
            throw Error(me + ": invalid dims (n_embd " + std::to_string(s.n_embd) + ", heads " +
                        std::to_string(d.n_k_heads) + "/" + std::to_string(d.n_v_heads) + ", head dims " +
                        std::to_string(d.head_k_dim) + "/" + std::to_string(d.head_v_dim) + ", conv kernel " +
                        std::to_string(s.conv_kernel) + ")");
        if (!s.registry) throw Error(me + ": no registry to resolve the gdn.* ops");
        const int per_k = d.n_v_heads / d.n_k_heads;
        if (fused_step() && per_k * s.decode_norm_ctas > gdn::DecodeStep::kMaxCluster)
            throw Error("[plugin.arch_gdn] decode_conv_fused with decode_norm_ctas = " +
                        std::to_string(s.decode_norm_ctas) + ": " + std::to_string(per_k) +
                        " value heads per key head x " + std::to_string(s.decode_norm_ctas) + " = " +
                        std::to_string(per_k * s.decode_norm_ctas) + " blocks per cluster, above " +
                        std::to_string(gdn::DecodeStep::kMaxCluster) + " (" + me + "); " +
                        (per_k <= gdn::DecodeStep::kMaxCluster
                             ? "lower decode_norm_ctas to " + std::to_string(gdn::DecodeStep::kMaxCluster / per_k)
                             : std::string("set decode_conv_fused = false")));
        conv_dim_ = d.conv_dim();
        vd_ = d.value_dim();
        P_ = conv_dim_ + vd_ + 2 * d.n_v_heads;
        const auto& n = s.names;
        const int L = s.layer;
        grouped_qkvz_ = n.has("gdn_qkvz");
        grouped_ba_ = n.has("gdn_ba");
        if (grouped_qkvz_) {
            parts_.push_back({n("gdn_qkvz", L), conv_dim_ + vd_, 0});
        } else {
            parts_.push_back({n("gdn_qkv", L), conv_dim_, 0});
            parts_.push_back({n("gdn_z", L), vd_, conv_dim_});
        }
        if (grouped_ba_) {
            parts_.push_back({n("gdn_ba", L), 2 * d.n_v_heads, conv_dim_ + vd_});
        } else {
            parts_.push_back({n("gdn_b", L), d.n_v_heads, conv_dim_ + vd_});
            parts_.push_back({n("gdn_a", L), d.n_v_heads, conv_dim_ + vd_ + d.n_v_heads});
        }
        make_groups(n.prefix(L));
        norm_ = blocks::norm_weight(s.source, n("attn_norm", L), s.n_embd, s.norm_offset, me);
        n_conv_ = n("gdn_conv", L);
        n_A_ = n("gdn_A", L);
        n_dt_ = n("gdn_dt", L);
        n_gnorm_ = n("gdn_norm", L);
        n_out_ = n("gdn_out", L);
        conv_ = s.registry->op<gdn::Conv>();
        decode_ = s.registry->op<gdn::RuleDecode>();
        chunked_ = s.registry->op<gdn::RuleChunked>();
        gnorm_ = s.registry->op<gdn::GatedNorm>();
        if (fused_step()) step_ = s.registry->op<gdn::DecodeStep>();
        if (grouped_qkvz_ || grouped_ba_) regroup_ = s.registry->op<Regroup>();
        const StateSpec st = state();
        conv_off_ = st.component_offset(0);
        ssm_off_ = st.component_offset(1);
        s_.source = nullptr;  // read above; not kept
    }

    std::string kind() const override { return s_.kind; }

    std::vector<WeightSpec> weight_specs() const override {
        std::vector<WeightSpec> w{norm_};
        for (const Part& p : parts_) w.push_back(matrix(p.name, p.rows, s_.n_embd));
        for (const Group& g : groups_) {
            if (g.count < 2) continue;
            WeightSpec f = matrix(g.fused, g.rows, s_.n_embd);
            for (size_t i = g.first; i < g.first + g.count; ++i) f.concat.push_back(parts_[i].name);
            w.push_back(std::move(f));
        }
        const gdn::Dims& d = s_.dims;
        w.push_back(vec(n_conv_, s_.conv_shape));
        w.push_back(vec(n_A_, {d.n_v_heads}));
        w.push_back(vec(n_dt_, {d.n_v_heads}));
        w.push_back(vec(n_gnorm_, {d.head_v_dim}));
        w.push_back(matrix(n_out_, s_.n_embd, vd_));
        for (const auto& e : s_.extra_specs) w.push_back(e);
        return w;
    }

    void bind(const WeightSet& w) override {
        wnorm_ = need(w.vector(norm_.name), norm_.name);
        part_w_.assign(parts_.size(), nullptr);
        fused_.assign(parts_.size(), 0);  // at most one matrix per part (forward: no allocation per step)
        for (Group& g : groups_) {
            g.w = g.count > 1 ? w.matrix(g.fused) : nullptr;
            if (!g.w)
                for (size_t i = g.first; i < g.first + g.count; ++i)
                    part_w_[i] = need(w.matrix(parts_[i].name), parts_[i].name);
        }
        wconv_ = need(w.vector(n_conv_), n_conv_);
        wA_ = need(w.vector(n_A_), n_A_);
        wdt_ = need(w.vector(n_dt_), n_dt_);
        wgnorm_ = need(w.vector(n_gnorm_), n_gnorm_);
        wout_ = need(w.matrix(n_out_), n_out_);
        prefetch_ = weight_ranges();
    }

    StateSpec state() const override {
        StateSpec st;
        st.kind = StateSpec::Kind::Recurrent;
        const gdn::Dims& d = s_.dims;
        st.components = {{"conv", {s_.conv_kernel - 1, conv_dim_}, DType::F32},
                         {"ssm", {d.n_v_heads, d.head_v_dim, d.head_k_dim}, DType::F32}};
        return st;
    }

    std::vector<std::string> required_ops() const override {
        std::vector<std::string> ops{gdn::Conv::name, gdn::RuleDecode::name, gdn::RuleChunked::name,
                                     gdn::GatedNorm::name};
        if (grouped_qkvz_ || grouped_ba_) ops.push_back(Regroup::name);
        if (fused_step()) ops.push_back(gdn::DecodeStep::name);
        return ops;
    }

    // xn [n, n_embd] | proj [n, P] | canon [n, P] (grouped layouts only) | conv out [n, conv_dim] | g, beta [n, Hv]
    // | o [n, value_dim] | the chunked rule's workspace (split variants)
    int64_t scratch_floats(int64_t n) const override {
        const int64_t hv = s_.dims.n_v_heads;
        return aligned(n * s_.n_embd) + aligned(n * P_) * (grouped_qkvz_ || grouped_ba_ ? 2 : 1) +
               aligned(n * conv_dim_) + 2 * aligned(n * hv) + aligned(n * vd_) + workspace_floats(n);
    }

    // Queued from the ranges bind() collected (decode hot path: no allocation, no virtual calls per step).
    void prefetch_weights(Executor& ex) const override {
        if (!prefetch_.empty()) ex.prefetch_l2(prefetch_.data(), prefetch_.size());
    }

    // The input projections (fused groups or their parts) and out_proj: what a decode step reads whole.
    std::vector<DeviceRange> weight_ranges() const {
        std::vector<DeviceRange> r;
        for (const Group& gr : groups_) {
            if (gr.w) {
                gr.w->device_ranges(r);
                continue;
            }
            for (size_t i = gr.first; i < gr.first + gr.count; ++i)
                if (part_w_[i]) part_w_[i]->device_ranges(r);
        }
        if (wout_) wout_->device_ranges(r);
        return r;
    }

    void forward(LayerContext& ctx, float* hidden) override {
        Executor& ex = ctx.ex;
        const StepBatch& b = ctx.batch;
        const int64_t n = b.n_tokens;
        const gdn::Dims& d = s_.dims;
        const int64_t hv = d.n_v_heads;
        const bool grouped = grouped_qkvz_ || grouped_ba_;
        float* xn = ctx.scratch;
        float* proj = xn + aligned(n * s_.n_embd);
        float* canon = grouped ? proj + aligned(n * P_) : proj;
        float* cout = canon + aligned(n * P_);
        float* g = cout + aligned(n * conv_dim_);
        float* beta = g + aligned(n * hv);
        float* o = beta + aligned(n * hv);
        float* ws = o + aligned(n * vd_);

        // norm -> projections: each matrix takes the RMSNorm into its matmul where its format can
        // (Weight::matmul_fused); the others read xn, normalized once.
        auto each_matrix = [&](auto&& f) {  // f(weight, its first column of the projection row, its index)
            size_t k = 0;
            for (const Group& gr : groups_) {
                if (gr.w) {
                    f(gr.w, gr.col, k++);
                    continue;
                }
                for (size_t i = gr.first; i < gr.first + gr.count; ++i) f(part_w_[i], parts_[i].col, k++);
            }
        };
        bool all = true;
        each_matrix([&](const Weight* w, int64_t col, size_t k) {
            FusedMatmul fm;
            fm.x = hidden, fm.x_stride = s_.n_embd, fm.y = proj + col, fm.y_stride = P_, fm.n_tokens = n;
            fm.norm = wnorm_, fm.norm_eps = s_.eps;
            fused_[k] = w->matmul_fused(ex, fm);
            all = all && fused_[k];
        });
        if (!all) {
            ex.rms_norm(hidden, wnorm_, xn, n, s_.n_embd, s_.eps);
            each_matrix([&](const Weight* w, int64_t col, size_t k) {
                if (!fused_[k]) w->matmul(ex, xn, s_.n_embd, proj + col, P_, n, false);
            });
        }
        if (grouped_qkvz_) regroup_(ex, {d, proj, P_, canon, P_, n, 0});
        if (grouped_ba_) regroup_(ex, {d, proj + conv_dim_ + vd_, P_, canon + conv_dim_ + vd_, P_, n, 1});
        const float* qkvz = grouped_qkvz_ ? canon : proj;  // q|k|v then z
        const float* ba = (grouped_ba_ ? canon : proj) + conv_dim_ + vd_;

        auto* base = static_cast<uint8_t*>(ctx.state.base);
        const int64_t stride = int64_t(ctx.state.slot_bytes / 4);
        const gdn::Seqs seqs = gdn::seqs_of(b);

        gdn::Conv::Args c;
        c.dims = d;
        c.seqs = seqs;
        c.kernel = s_.conv_kernel;
        c.x = qkvz;
        c.x_stride = P_;
        c.w = wconv_;
        c.conv_state = reinterpret_cast<float*>(base + conv_off_);
        c.state_stride = stride;
        c.out = cout;
        c.out_stride = conv_dim_;
        c.b = ba;
        c.b_stride = P_;
        c.a = ba + hv;
        c.a_stride = P_;
        c.A = wA_;
        c.A_is_log = s_.a_is_log;
        c.dt_bias = wdt_;
        c.g = g;
        c.beta = beta;
        c.variant = s_.warp_kernels ? 0 : 1;
        const bool one_op = b.all_decode && fused_step();  // gdn.decode_step: the conv inside the decode kernel
        if (!one_op) conv_(ex, c);

        gdn::RuleArgs r;
        r.dims = d;
        r.seqs = seqs;
        r.qkv = cout;
        r.qkv_stride = conv_dim_;
        r.g = g;
        r.beta = beta;
        r.state = reinterpret_cast<float*>(base + ssm_off_);
        r.state_stride = stride;
        r.o = o;
        r.o_stride = vd_;
        r.scale = float(1.0 / std::sqrt(double(d.head_k_dim)));
        if (b.all_decode && s_.decode_fused_norm) {  // the gated norm in the decode kernel
            r.norm_w = wgnorm_;
            r.z = qkvz + conv_dim_;
            r.z_stride = P_;
            r.norm_eps = s_.eps;
            r.variant = s_.decode_norm_warps;
            r.decode_ctas = s_.decode_norm_ctas;
            if (one_op)
                step_(ex, {c, r});
            else
                decode_(ex, r);
            wout_->matmul(ex, o, vd_, hidden, s_.n_embd, n, true);  // residual: hidden += out_proj(o)
            return;
        }
        if (b.all_decode) {
            decode_(ex, r);
        } else {
            r.variant = s_.rule_variant;
            r.workspace = workspace_floats(n) > 0 ? ws : nullptr;
            r.workspace_bytes = size_t(workspace_floats(n)) * 4;
            chunked_(ex, r);
        }

        gdn::GatedNorm::Args gn;
        gn.x = o;
        gn.x_stride = vd_;
        gn.z = qkvz + conv_dim_;
        gn.z_stride = P_;
        gn.w = wgnorm_;
        gn.y = o;
        gn.y_stride = vd_;
        gn.n_tokens = n;
        gn.variant = s_.warp_kernels ? 0 : 1;
        gn.n_heads = int(hv);
        gn.head_dim = d.head_v_dim;
        gn.eps = s_.eps;
        gnorm_(ex, gn);
        wout_->matmul(ex, o, vd_, hidden, s_.n_embd, n, true);  // residual: hidden += out_proj(o)
    }

private:
    bool fused_step() const { return s_.decode_fused_norm && s_.decode_conv_fused; }

    template <class T>
    static T* need(T* p, const std::string& name) {
        if (!p) throw Error("layer weight '" + name + "' was not loaded");
        return p;
    }

    int64_t workspace_floats(int64_t n) const {
        if (s_.rule_variant == 1) return 0;  // the fused kernel needs none
        return aligned(int64_t((gdn::rule_chunked_workspace_bytes(s_.dims, n) + 3) / 4));
    }

    // Adjacent parts whose file tensors have one storage type go into one matmul (the core builds the concat when
    // one format takes every part; otherwise the parts run one by one).
    void make_groups(const std::string& prefix) {
        auto type_of = [&](const Part& p) {
            const TensorInfo* t = s_.source ? s_.source->find(p.name) : nullptr;
            return t ? t->type : std::string();
        };
        for (size_t i = 0; i < parts_.size(); ++i) {
            const std::string ty = type_of(parts_[i]);
            if (!groups_.empty() && !ty.empty() && ty == type_of(parts_[groups_.back().first])) {
                Group& g = groups_.back();
                ++g.count;
                g.rows += parts_[i].rows;
                continue;
            }
            Group g;
            g.first = i;
            g.count = 1;
            g.rows = parts_[i].rows;
            g.col = parts_[i].col;
            groups_.push_back(g);
        }
        for (size_t k = 0; k < groups_.size(); ++k)
            groups_[k].fused = prefix + "gdn_in." + std::to_string(k) + ".fused";
    }

    GdnSpec s_;
    int64_t conv_dim_ = 0, vd_ = 0, P_ = 0;
    uint64_t conv_off_ = 0, ssm_off_ = 0;  // byte offsets of the state components in a slot
    bool grouped_qkvz_ = false, grouped_ba_ = false;
    std::vector<Part> parts_;
    std::vector<Group> groups_;
    std::vector<const Weight*> part_w_;
    std::vector<uint8_t> fused_;  // forward: which projection took the norm into its matmul
    WeightSpec norm_;
    std::string n_conv_, n_A_, n_dt_, n_gnorm_, n_out_;
    const float *wnorm_ = nullptr, *wconv_ = nullptr, *wA_ = nullptr, *wdt_ = nullptr, *wgnorm_ = nullptr;
    const Weight* wout_ = nullptr;
    std::vector<DeviceRange> prefetch_;  // weight_ranges(), from bind()
    OpRef<gdn::Conv> conv_;
    OpRef<gdn::RuleDecode> decode_;
    OpRef<gdn::DecodeStep> step_;
    OpRef<gdn::RuleChunked> chunked_;
    OpRef<gdn::GatedNorm> gnorm_;
    OpRef<Regroup> regroup_;
};

}  // namespace

std::unique_ptr<Layer> make_gdn_layer(const GdnSpec& spec) { return std::make_unique<GdnLayer>(spec); }

}  // namespace imp::gdn_arch
