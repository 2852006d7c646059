// Argument checks of the GDN ops (gdn_kernels.h): every kernel, CPU or CUDA, runs them before touching memory.
#include <string>

#include "gdn_kernels.h"
#include "imp/error.h"

namespace imp::gdn {

namespace {

[[noreturn]] void fail(const char* op, const std::string& what) { throw Error(std::string(op) + ": " + what); }

void check_dims(const char* op, const Dims& d) {
    if (d.n_k_heads <= 0 || d.n_v_heads <= 0 || d.head_k_dim <= 0 || d.head_v_dim <= 0)
        fail(op, "head counts and sizes must be positive (Hk " + std::to_string(d.n_k_heads) + ", Hv " +
                     std::to_string(d.n_v_heads) + ", dk " + std::to_string(d.head_k_dim) + ", dv " +
                     std::to_string(d.head_v_dim) + ")");
    if (d.n_v_heads % d.n_k_heads != 0)
        fail(op, "value heads " + std::to_string(d.n_v_heads) + " are not a multiple of key heads " +
                     std::to_string(d.n_k_heads));
}

void check_seqs(const char* op, const Seqs& s) {
    if (s.n_tokens < 0 || s.n_seqs < 0 || (s.n_tokens > 0 && s.n_seqs == 0))
        fail(op, std::to_string(s.n_tokens) + " rows in " + std::to_string(s.n_seqs) + " sequences");
    if (s.n_tokens > 0 && (!s.query_start_loc || !s.token_seq || !s.state_slots))
        fail(op, "query_start_loc, token_seq and state_slots are required");
}

void check_stride(const char* op, const char* what, const void* p, int64_t stride, int64_t width) {
    if (!p) fail(op, std::string(what) + " is null");
    if (stride < width)
        fail(op, std::string(what) + " row stride " + std::to_string(stride) + " < width " + std::to_string(width));
}

}  // namespace

void validate(const Conv::Args& a) {
    const char* op = Conv::name;
    check_dims(op, a.dims);
    check_seqs(op, a.seqs);
    if (a.kernel < 2 || a.kernel > 8) fail(op, "conv kernel " + std::to_string(a.kernel) + " outside 2..8");
    if (a.seqs.n_tokens == 0) return;
    const int64_t cd = a.dims.conv_dim(), hv = a.dims.n_v_heads;
    check_stride(op, "x", a.x, a.x_stride, cd);
    check_stride(op, "out", a.out, a.out_stride, cd);
    check_stride(op, "b", a.b, a.b_stride, hv);
    check_stride(op, "a", a.a, a.a_stride, hv);
    check_stride(op, "conv_state", a.conv_state, a.state_stride, (a.kernel - 1) * cd);
    if (!a.w || !a.A || !a.dt_bias || !a.g || !a.beta) fail(op, "w, A, dt_bias, g and beta are required");
    if (!(a.l2_eps > 0.f)) fail(op, "l2_eps must be positive");
}

void validate(const char* op, const RuleArgs& a) {
    check_dims(op, a.dims);
    check_seqs(op, a.seqs);
    if (a.seqs.n_tokens == 0) return;
    const Dims& d = a.dims;
    check_stride(op, "qkv", a.qkv, a.qkv_stride, d.conv_dim());
    check_stride(op, "o", a.o, a.o_stride, d.value_dim());
    check_stride(op, "state", a.state, a.state_stride, d.value_dim() * d.head_k_dim);
    if (!a.g || !a.beta) fail(op, "g and beta are required");
    if (a.norm_w) {
        check_stride(op, "z", a.z, a.z_stride, d.value_dim());
        if (!(a.norm_eps > 0.f)) fail(op, "norm_eps must be positive");
    }
}

void validate(const GatedNorm::Args& a) {
    const char* op = GatedNorm::name;
    if (a.n_tokens < 0 || a.n_heads <= 0 || a.head_dim <= 0)
        fail(op, std::to_string(a.n_tokens) + " rows of " + std::to_string(a.n_heads) + " heads of " +
                     std::to_string(a.head_dim));
    if (a.n_tokens == 0) return;
    const int64_t width = int64_t(a.n_heads) * a.head_dim;
    check_stride(op, "x", a.x, a.x_stride, width);
    check_stride(op, "z", a.z, a.z_stride, width);
    check_stride(op, "y", a.y, a.y_stride, width);
    if (!a.w) fail(op, "w is null");
    if (!(a.eps > 0.f)) fail(op, "eps must be positive");
}

RuleArgs validate(const DecodeStep::Args& a) {
    const char* op = DecodeStep::name;
    RuleArgs r = a.rule;
    r.dims = a.conv.dims;
    r.seqs = a.conv.seqs;
    r.qkv = a.conv.out, r.qkv_stride = a.conv.out_stride, r.g = a.conv.g, r.beta = a.conv.beta;
    try {
        validate(a.conv);
        validate(op, r);
    } catch (const Error& e) {  // "gdn.conv: ..." -> "gdn.decode_step: conv: ..."
        const std::string m = e.what();
        fail(op, m.rfind(Conv::name, 0) == 0 ? "conv" + m.substr(std::string(Conv::name).size()) : m.substr(m.find(' ') + 1));
    }
    if (r.seqs.n_tokens != r.seqs.n_seqs || (r.seqs.n_tokens > 0 && r.seqs.max_query_len != 1))
        fail(op, std::to_string(r.seqs.n_tokens) + " rows for " + std::to_string(r.seqs.n_seqs) +
                     " sequences, at most " + std::to_string(r.seqs.max_query_len) +
                     " per sequence (one row per sequence)");
    if (r.seqs.n_tokens > 0 && !r.norm_w) fail(op, "rule.norm_w is required (the gated norm is part of the step)");
    return r;
}

}  // namespace imp::gdn
