// arch_gdn: the "gdn" Arch. Each layer is a mixer — the SDK's gated attention block (sigmoid output gate from
// q_proj, partial NEOX rotary, per-head q/k RMSNorm) on the full-attention layers, the Gated DeltaNet layer
// (gdn_layer.h) on the others — followed by the SDK's MoE block (softmax top-k, renormalized, shared expert with a
// sigmoid gate) or, for the dense Qwen3.5 models, the SwiGLU FFN block. Hugging Face checkpoints store zero-centred
// norms w (y = x_norm * (1 + w)): the blocks fold the offset into the weights at build, the final norm too (its
// computed weight rides on the first GDN layer's declaration). GGUF files store 1 + w already.
#include "gdn_arch.h"

#include <cmath>
#include <cstdio>

#include "gdn_config.h"
#include "gdn_layer.h"
#include "imp/blocks/attention.h"
#include "imp/blocks/ffn.h"
#include "imp/blocks/moe.h"
#include "imp/blocks/norm.h"
#include "imp/error.h"
#include "imp/registry.h"

namespace imp::gdn_arch {

namespace {

MetaValue mv_int(int64_t v) { return MetaValue{v, "i64"}; }
MetaValue mv_float(double v) { return MetaValue{v, "f64"}; }
MetaValue mv_bool(bool v) { return MetaValue{v, "bool"}; }

std::unique_ptr<Metadata> hparams(const ModelSource& src, const GdnConfig& c) {
    auto hp = std::make_unique<Metadata>();
    hp->source = src.path();
    hp->set("n_embd", mv_int(c.n_embd));
    hp->set("n_head", mv_int(c.n_head));
    hp->set("n_head_kv", mv_int(c.n_kv));
    hp->set("head_dim", mv_int(c.head_dim));
    hp->set("norm_eps", mv_float(c.eps));
    hp->set("rope.n_rot", mv_int(c.n_rot));
    hp->set("rope.base", mv_float(c.rope_base));
    hp->set("gdn.n_k_heads", mv_int(c.gdn_hk));
    hp->set("gdn.n_v_heads", mv_int(c.gdn_hv));
    hp->set("gdn.head_k_dim", mv_int(c.gdn_dk));
    hp->set("gdn.head_v_dim", mv_int(c.gdn_dv));
    hp->set("gdn.conv_kernel", mv_int(c.conv_kernel));
    hp->set("gdn.tiled", mv_bool(c.tiled));
    hp->set("moe.n_expert", mv_int(c.n_expert));
    hp->set("moe.top_k", mv_int(c.top_k));
    hp->set("moe.n_ff_exp", mv_int(c.n_ff_exp));
    hp->set("moe.n_ff_shared", mv_int(c.n_ff_shared));
    hp->set("moe.norm_topk", mv_bool(c.norm_topk));
    return hp;
}

// One info line when the file holds tensors the text model does not read (vision tower, MTP head).
void note_skipped(const ModelSource& src, const GdnConfig& c) {
    size_t n = 0;
    for (const auto& t : src.tensors())
        for (const auto& p : c.skipped)
            if (t.name.compare(0, p.size(), p) == 0) ++n;
    if (n == 0) return;
    std::string what;
    for (const auto& p : c.skipped) what += (what.empty() ? "" : ", ") + p + "*";
    std::fprintf(stderr, "imp: arch_gdn: %s: %zu tensors of the vision tower / MTP blocks (%s) are not used (text only)\n",
                 src.path().c_str(), n, what.c_str());
}

class GdnArch final : public Arch {
public:
    std::string name() const override { return "gdn"; }
    std::vector<std::string> architectures() const override { return gdn_architectures(); }
    bool matches(const ModelSource& src) const override {
        const std::string a = src.architecture();
        for (const auto& x : gdn_architectures())
            if (a == x) return true;
        return false;
    }

    ModelDesc build(const ModelSource& src, const Registry& reg) const override {
        const GdnConfig c = read_config(src);
        note_skipped(src, c);
        ModelDesc d;
        d.arch = c.arch;
        d.n_vocab = c.n_vocab;
        d.n_embd = c.n_embd;
        d.n_ctx_train = c.n_ctx;
        d.norm_eps = float(c.eps);
        d.tok_embd = c.tok_embd;
        d.output_norm = c.output_norm;
        d.output = c.output;
        d.hparams = hparams(src, c);

        blocks::AttentionSpec a;
        a.kind = "gdn.attention";
        a.n_embd = c.n_embd;
        a.n_head = int(c.n_head);
        a.n_kv_head = int(c.n_kv);
        a.head_dim = int(c.head_dim);
        a.scale = float(c.attn_scale);  // 0: 1 / sqrt(head_dim)
        a.rope.n_rot = int(c.n_rot);
        a.rope.base = float(c.rope_base);
        a.rope.neox = true;
        a.rope.freq_scale = float(c.freq_scale);
        a.qk_norm = true;
        a.output_gate = true;
        a.norm_offset = c.norm_offset;
        a.eps = float(c.eps);
        a.names = c.names;
        a.source = &src;

        blocks::MoeSpec m;
        m.kind = "gdn.moe";
        m.n_embd = c.n_embd;
        m.n_expert = int(c.n_expert);
        m.top_k = int(c.top_k);
        m.n_ff_exp = c.n_ff_exp;
        m.norm_topk = c.norm_topk;
        m.n_ff_shared = c.n_ff_shared;
        m.shared_gate = c.n_ff_shared > 0;
        if (!c.gguf) m.shared_gate_shape = {1, c.n_embd};
        m.eps = float(c.eps);
        m.norm_offset = c.norm_offset;
        m.names = c.names;
        m.source = &src;
        m.registry = &reg;

        blocks::FfnSpec f;
        f.kind = "gdn.ffn";
        f.n_embd = c.n_embd;
        f.n_ff = c.n_ff;
        f.eps = float(c.eps);
        f.norm_offset = c.norm_offset;
        f.names = c.names;
        f.source = &src;

        GdnSpec g;
        g.n_embd = c.n_embd;
        g.dims.n_k_heads = int(c.gdn_hk);
        g.dims.n_v_heads = int(c.gdn_hv);
        g.dims.head_k_dim = int(c.gdn_dk);
        g.dims.head_v_dim = int(c.gdn_dv);
        g.dims.tiled = c.tiled;
        g.conv_kernel = int(c.conv_kernel);
        g.conv_shape = c.conv_shape;
        g.a_is_log = c.a_is_log;
        g.eps = float(c.eps);
        g.norm_offset = c.norm_offset;
        g.names = c.names;
        g.source = &src;
        g.registry = &reg;
        const Settings& set = reg.settings("arch_gdn");
        g.decode_fused_norm = set.get_bool("decode_fused_norm");
        g.decode_norm_warps = std::stoi(set.get_string("decode_norm_warps"));
        g.decode_norm_ctas = std::stoi(set.get_string("decode_norm_ctas"));
        g.decode_conv_fused = set.get_bool("decode_conv_fused");
        g.warp_kernels = set.get_bool("warp_kernels");
        const std::string rule = set.get_string("prefill_rule");
        g.rule_variant = rule == "fused"              ? 1
                         : rule == "split64"          ? 2
                         : rule == "split32"          ? 3
                         : rule == "split32_mma_prep" ? 4
                         : rule == "mma32"            ? 5
                         : rule == "mma64"            ? 6
                                                      : 0;

        bool first_gdn = true;
        for (int i = 0; i < int(c.n_layer); ++i) {
            if (c.full_attn[size_t(i)]) {
                a.layer = i;
                d.layers.push_back(blocks::make_attention(a));
            } else {
                g.layer = i;
                g.extra_specs.clear();
                if (first_gdn && c.norm_offset != 0.f)
                    g.extra_specs.push_back(
                        blocks::norm_weight(&src, c.output_norm, c.n_embd, c.norm_offset, "output norm"));
                first_gdn = false;
                d.layers.push_back(make_gdn_layer(g));
            }
            if (c.moe[size_t(i)]) {
                m.layer = i;
                d.layers.push_back(blocks::make_moe(m));
            } else {
                f.layer = i;
                d.layers.push_back(blocks::make_swiglu_ffn(f));
            }
        }
        if (first_gdn)
            throw Error(src.path() + ": no linear-attention (Gated DeltaNet) layer in a " + c.arch + " model");
        return d;
    }
};

}  // namespace

std::unique_ptr<Arch> make_arch() { return std::make_unique<GdnArch>(); }

}  // namespace imp::gdn_arch
