// The output-gate ops (gate_ops.h): CPU reference kernels and the dispatch by executor kind.
#include "blocks/gate_ops.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "imp/error.h"

namespace imp::blocks::ops {

namespace {

void check(const char* op, const Executor& ex, int64_t qg_stride, int64_t n_tokens, int n_head, int head_dim) {
    if (n_tokens < 0 || n_head <= 0 || head_dim <= 0 || qg_stride < int64_t(n_head) * 2 * head_dim)
        throw Error(std::string(op) + ": " + std::to_string(n_tokens) + " rows of " + std::to_string(n_head) +
                    " heads of " + std::to_string(head_dim) + " (query + gate) do not fit a row stride of " +
                    std::to_string(qg_stride));
    if (ex.kind() == DeviceKind::CUDA && !ex.cuda())
        throw Error(std::string(op) + ": CUDA executor '" + ex.name() + "' gives no CUDA handles");
}

int64_t grain(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(width, 1)); }

}  // namespace

void split_gated_q(Executor& ex, const float* qg, int64_t qg_stride, float* q, int64_t n_tokens, int n_head,
                   int head_dim) {
    check("split_gated_q", ex, qg_stride, n_tokens, n_head, head_dim);
    if (n_tokens == 0) return;
    if (ex.kind() == DeviceKind::CUDA) {
        const CudaHandles* h = ex.cuda();
        cuda_ops::split_gated_q(qg, qg_stride, q, n_tokens, n_head, head_dim, h->stream, h->pdl);
        return;
    }
    const int64_t hd = head_dim, qd = int64_t(n_head) * hd;
    ex.parallel_for(n_tokens, grain(qd), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
            for (int h = 0; h < n_head; ++h)
                std::copy_n(qg + t * qg_stride + 2 * h * hd, hd, q + t * qd + h * hd);
    });
}

void apply_output_gate(Executor& ex, float* x, const float* qg, int64_t qg_stride, int64_t n_tokens, int n_head,
                       int head_dim) {
    check("apply_output_gate", ex, qg_stride, n_tokens, n_head, head_dim);
    if (n_tokens == 0) return;
    if (ex.kind() == DeviceKind::CUDA) {
        const CudaHandles* h = ex.cuda();
        cuda_ops::apply_output_gate(x, qg, qg_stride, n_tokens, n_head, head_dim, h->stream, h->pdl);
        return;
    }
    const int64_t hd = head_dim, qd = int64_t(n_head) * hd;
    ex.parallel_for(n_tokens, grain(qd), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
            for (int h = 0; h < n_head; ++h) {
                const float* g = qg + t * qg_stride + 2 * h * hd + hd;
                float* o = x + t * qd + h * hd;
                for (int64_t d = 0; d < hd; ++d) o[d] *= 1.f / (1.f + std::exp(-g[d]));
            }
    });
}

}  // namespace imp::blocks::ops
