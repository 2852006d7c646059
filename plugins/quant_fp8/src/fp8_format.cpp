// quant_fp8: the "fp8" QuantFormat (see fp8_format.h): plan from the layout, load onto the CPU (exact dequantizing
// weights) or the CUDA kernels, reference dequantization.
#include "fp8_format.h"
#include "fp8_settings.h"

#include <utility>
#include <vector>

#include "dequant_cpu.h"
#include "fp8_layout.h"
#include "fp8_ref.h"
#include "format_common.h"
#include "hf_quant_util.h"
#include "load_parallel.h"
#include "imp/error.h"
#include "imp/executor.h"
#ifdef IMP_FP8_HAVE_CUDA
#include "fp8_cuda.h"
#endif

namespace imp::fp8 {
namespace {

constexpr const char* kPlugin = "quant_fp8";

bool cuda_built() {
#ifdef IMP_FP8_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

Layout checked(const WeightRequest& req) {
    Layout l = layout_of(req.source, req.config);
    if (!l.refusal.empty()) throw Error(std::string(kPlugin) + ": cannot read '" + req.name + "': " + l.refusal);
    return l;
}

int64_t scales_per_matrix(const Layout& l) { return l.per_row() ? l.shape[l.shape.size() - 2] : 1; }

uint64_t cpu_bytes(int64_t n, int64_t rows, int64_t cols, int64_t n_scale) {
    return uint64_t(n) * uint64_t(rows) * uint64_t(cols) + 4 * uint64_t(n) * uint64_t(n_scale);
}

// The E4M3 bytes of all pieces, contiguous (a single tensor in place).
const uint8_t* gather(const Layout& l, quant_hf::HostBytes& buf) {
    if (l.pieces.size() == 1) return l.pieces[0].q->data;
    std::vector<std::pair<const uint8_t*, uint64_t>> pieces;
    for (const auto& p : l.pieces) pieces.emplace_back(p.q->data, p.q->nbytes);
    quant_hf::concat_bytes(pieces, buf);
    return buf.data();
}

#ifdef IMP_FP8_HAVE_CUDA
// The pieces' rows in place (the CUDA upload copies them from the file: no gathered copy).
std::vector<cuda::RowRun> row_runs(const Layout& l) {
    std::vector<cuda::RowRun> r;
    for (const auto& p : l.pieces) r.push_back({p.q->data, p.n * p.rows});
    return r;
}
#endif

struct CpuCopy {
    const uint8_t* q;
    const float* scales;
    int64_t n_scale;  // per matrix: 1 or rows
};

CpuCopy upload_cpu(const Layout& l, Executor& ex, const std::string& name, int64_t n, int64_t rows, int64_t cols) {
    quant_hf::HostBytes buf;
    const uint8_t* host = gather(l, buf);
    const std::vector<float> sc = l.canonical_scales();
    const uint64_t nq = uint64_t(n) * uint64_t(rows) * uint64_t(cols);
    auto* q = static_cast<uint8_t*>(ex.alloc(nq, (name + ".q").c_str()));
    auto* s = static_cast<float*>(ex.alloc(4 * sc.size(), (name + ".scale").c_str()));
    ex.upload(q, host, nq);
    ex.upload(s, sc.data(), 4 * sc.size());
    return {q, s, int64_t(sc.size()) / n};
}

}  // namespace

WeightPlan Fp8Format::plan(const WeightRequest& req, const Executor& ex) const {
    Layout l = layout_of(req.source, req.config);
    if (!l.refusal.empty()) return WeightPlan::refuse(l.refusal);
    std::vector<const TensorInfo*> used;
    for (const auto& piece : l.pieces) used.insert(used.end(), piece.tensors.begin(), piece.tensors.end());
    WeightPlan p = quant_hf::accepted_plan(ex, kPlugin, cuda_built(), "FP8_E4M3", l.shape, std::move(used));
    if (!p.accepted) return p;
    [[maybe_unused]] const bool cuda = ex.kind() == DeviceKind::CUDA;
    const bool experts = l.experts();
    if ((req.role == WeightRole::Experts) != experts) return p;  // the engine reports the shape
    const int64_t n = experts ? l.shape[0] : 1, rows = l.shape[l.shape.size() - 2], cols = l.shape.back();
    const int64_t ns = scales_per_matrix(l);
#ifdef IMP_FP8_HAVE_CUDA
    if (cuda) {
        p.device_bytes = cuda::device_bytes(rows, cols, n, ns, cuda_settings(req.settings));
        return p;
    }
#endif
    p.device_bytes = cpu_bytes(n, rows, cols, ns);
    return p;
}

std::unique_ptr<Weight> Fp8Format::load(const WeightRequest& req, Executor& ex) const {
    const Layout l = checked(req);
    quant_hf::require_matrix(kPlugin, req.name, l.shape);
    const int64_t rows = l.shape[0], cols = l.shape[1];
    if (ex.kind() == DeviceKind::CUDA) {
#ifdef IMP_FP8_HAVE_CUDA
        const std::vector<float> sc = l.canonical_scales();
        return cuda::make_weight(ex, rows, cols, row_runs(l), sc.data(), int64_t(sc.size()), "FP8_E4M3",
                                 cuda_settings(req.settings));
#else
        quant_hf::no_cuda(kPlugin, req.name, "FP8_E4M3");
#endif
    }
    const CpuCopy c = upload_cpu(l, ex, req.name, 1, rows, cols);
    return quant_cpu::make_weight(kPlugin, req.name, "FP8_E4M3", rows, cols, cpu_bytes(1, rows, cols, c.n_scale),
                                  [c, cols](int64_t r, float* out) {
                                      dequant_row(c.q + r * cols, c.scales[c.n_scale == 1 ? 0 : r], cols, out);
                                  });
}

std::unique_ptr<ExpertWeights> Fp8Format::load_experts(const WeightRequest& req, Executor& ex) const {
    const Layout l = checked(req);
    quant_hf::require_experts(kPlugin, req.name, l.shape);
    const int64_t n = l.shape[0], rows = l.shape[1], cols = l.shape[2];
    if (ex.kind() == DeviceKind::CUDA) {
#ifdef IMP_FP8_HAVE_CUDA
        const std::vector<float> sc = l.canonical_scales();
        return cuda::make_experts(ex, n, rows, cols, row_runs(l), sc.data(), int64_t(sc.size()) / n,
                                  cuda_settings(req.settings));
#else
        quant_hf::no_cuda(kPlugin, req.name, "FP8_E4M3");
#endif
    }
    const CpuCopy c = upload_cpu(l, ex, req.name, n, rows, cols);
    return quant_cpu::make_experts(kPlugin, req.name, "FP8_E4M3", n, rows, cols, cpu_bytes(n, rows, cols, c.n_scale),
                                   [c, cols, rows](int64_t e, int64_t r, float* out) {
                                       const int64_t i = e * rows + r;
                                       dequant_row(c.q + i * cols, c.scales[c.n_scale == 1 ? e : i], cols, out);
                                   });
}

void Fp8Format::dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const {
    const Layout l = layout_of(src, nullptr);
    int64_t total = 0;
    for (const auto& p : l.pieces) total += p.n * p.rows;
    quant_hf::check_dequantize(kPlugin, src, l.refusal, row0, nrows, total);
    const int64_t cols = l.shape.back();
    for (int64_t i = 0; i < nrows; ++i) {
        int64_t r = row0 + i;
        size_t k = 0;
        while (r >= l.pieces[k].n * l.pieces[k].rows) {
            r -= l.pieces[k].n * l.pieces[k].rows;
            ++k;
        }
        const Piece& p = l.pieces[k];
        dequant_row(p.q->data + uint64_t(r) * uint64_t(cols), p.scale(r / p.rows, r % p.rows), cols, out + i * cols);
    }
}

}  // namespace imp::fp8
