// quant_nvfp4: the "nvfp4" QuantFormat (see nvfp4_format.h): plan from the layout, load onto the CPU (exact
// dequantizing weights) or the CUDA kernels, reference dequantization.
#include "nvfp4_format.h"
#include "nvfp4_settings.h"

#include "dequant_cpu.h"
#include "format_common.h"
#include "hf_quant_util.h"
#include "imp/error.h"
#include "imp/executor.h"
#include "nvfp4_host.h"
#include "nvfp4_ref.h"
#ifdef IMP_NVFP4_HAVE_CUDA
#include "nvfp4_cuda.h"
#endif

namespace imp::nvfp4 {
namespace {

constexpr const char* kPlugin = "quant_nvfp4";

uint64_t cpu_bytes(int64_t n, int64_t rows, int64_t cols) {
    return uint64_t(n) * uint64_t(rows) * uint64_t(cols / 2 + cols / 16) + 4 * uint64_t(n);
}

bool cuda_built() {
#ifdef IMP_NVFP4_HAVE_CUDA
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

// The canonical arrays copied into CPU executor memory; the pointers stay valid as long as the executor.
struct CpuCopy {
    const uint8_t* codes;
    const uint8_t* scales;
    const float* globals;  // per matrix: the multiplier, or compressed-tensors' divisor when divide
    bool divide;
};

void dequant_cpu_row(const CpuCopy& c, int64_t i, int64_t e, int64_t cols, float* out) {
    const uint8_t* codes = c.codes + i * (cols / 2);
    const uint8_t* scales = c.scales + i * (cols / 16);
    if (c.divide) dequant_row_ct(codes, scales, c.globals[e], cols, out);
    else dequant_row(codes, scales, c.globals[e], cols, out);
}

#ifdef IMP_NVFP4_HAVE_CUDA
// The pieces' rows in place (the CUDA upload repacks them from the file: no gathered copy).
std::vector<cuda::RowRun> row_runs(const Layout& l) {
    std::vector<cuda::RowRun> r;
    for (const Piece& p : l.pieces) r.push_back({p.codes->data, p.scales->data, p.n * p.rows});
    return r;
}
#endif

CpuCopy upload_cpu(const Layout& l, Executor& ex, const std::string& name, int64_t n, int64_t rows, int64_t cols) {
    const HostNvfp4 h = gather(l);
    const uint64_t nc = uint64_t(n) * uint64_t(rows) * uint64_t(cols / 2);
    const uint64_t ns = uint64_t(n) * uint64_t(rows) * uint64_t(cols / 16);
    auto* c = static_cast<uint8_t*>(ex.alloc(nc, (name + ".codes").c_str()));
    auto* s = static_cast<uint8_t*>(ex.alloc(ns, (name + ".scales").c_str()));
    auto* g = static_cast<float*>(ex.alloc(4 * uint64_t(n), (name + ".global").c_str()));
    ex.upload(c, h.codes, nc);
    ex.upload(s, h.scales, ns);
    const bool divide = l.pieces[0].compressed_tensors();
    std::vector<float> gl;
    for (size_t i = 0; i < l.pieces.size(); i += size_t(l.parts_per_expert))
        for (float v : divide ? l.pieces[i].ct_global_scales : l.pieces[i].globals) gl.push_back(v);
    gl.resize(size_t(n));  // parts share the first part's (layout_of checked they are equal)
    ex.upload(g, gl.data(), 4 * uint64_t(n));
    return {c, s, g, divide};
}

}  // namespace

WeightPlan Nvfp4Format::plan(const WeightRequest& req, const Executor& ex) const {
    Layout l = layout_of(req.source, req.config);
    if (!l.refusal.empty()) return WeightPlan::refuse(l.refusal);
    std::vector<const TensorInfo*> used;
    for (const auto& piece : l.pieces) used.insert(used.end(), piece.tensors.begin(), piece.tensors.end());
    WeightPlan p = quant_hf::accepted_plan(ex, kPlugin, cuda_built(), "NVFP4", l.shape, std::move(used));
    if (!p.accepted) return p;
    [[maybe_unused]] const bool cuda = ex.kind() == DeviceKind::CUDA;
    const bool experts = l.experts();
    if ((req.role == WeightRole::Experts) != experts) return p;  // the engine reports the shape
    const int64_t n = experts ? l.shape[0] : 1, rows = l.shape[l.shape.size() - 2], cols = l.shape.back();
#ifdef IMP_NVFP4_HAVE_CUDA
    if (cuda) {
        p.device_bytes = cuda::device_bytes(rows, cols, n, cuda_settings(req.settings));
        return p;
    }
#endif
    p.device_bytes = cpu_bytes(n, rows, cols);
    return p;
}

std::unique_ptr<Weight> Nvfp4Format::load(const WeightRequest& req, Executor& ex) const {
    const Layout l = checked(req);
    quant_hf::require_matrix(kPlugin, req.name, l.shape);
    const int64_t rows = l.shape[0], cols = l.shape[1];
    if (ex.kind() == DeviceKind::CUDA) {
#ifdef IMP_NVFP4_HAVE_CUDA
        return cuda::make_weight(ex, rows, cols, row_runs(l), globals_of(l)[0], "NVFP4", cuda_settings(req.settings));
#else
        quant_hf::no_cuda(kPlugin, req.name, "NVFP4");
#endif
    }
    const CpuCopy c = upload_cpu(l, ex, req.name, 1, rows, cols);
    return quant_cpu::make_weight(kPlugin, req.name, "NVFP4", rows, cols, cpu_bytes(1, rows, cols),
                                  [c, cols](int64_t r, float* out) { dequant_cpu_row(c, r, 0, cols, out); });
}

std::unique_ptr<ExpertWeights> Nvfp4Format::load_experts(const WeightRequest& req, Executor& ex) const {
    const Layout l = checked(req);
    quant_hf::require_experts(kPlugin, req.name, l.shape);
    const int64_t n = l.shape[0], rows = l.shape[1], cols = l.shape[2];
    if (ex.kind() == DeviceKind::CUDA) {
#ifdef IMP_NVFP4_HAVE_CUDA
        return cuda::make_experts(ex, n, rows, cols, row_runs(l), globals_of(l).data(), cuda_settings(req.settings));
#else
        quant_hf::no_cuda(kPlugin, req.name, "NVFP4");
#endif
    }
    const CpuCopy c = upload_cpu(l, ex, req.name, n, rows, cols);
    return quant_cpu::make_experts(kPlugin, req.name, "NVFP4", n, rows, cols, cpu_bytes(n, rows, cols),
                                   [c, cols, rows](int64_t e, int64_t r, float* out) {
                                       dequant_cpu_row(c, e * rows + r, e, cols, out);
                                   });
}

void Nvfp4Format::dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const {
    const Layout l = layout_of(src, nullptr);
    int64_t total = 0;
    for (const auto& p : l.pieces) total += p.n * p.rows;
    quant_hf::check_dequantize(kPlugin, src, l.refusal, row0, nrows, total);
    const int64_t cols = l.shape.back();
    for (int64_t i = 0; i < nrows; ++i) {
        int64_t r = 0;
        const Piece& p = l.locate(row0 + i, r);
        const uint8_t* codes = p.codes->data + uint64_t(r) * uint64_t(cols / 2);
        const uint8_t* scales = p.scales->data + uint64_t(r) * uint64_t(cols / 16);
        const size_t e = size_t(r / p.rows);
        if (p.compressed_tensors()) dequant_row_ct(codes, scales, p.ct_global_scales[e], cols, out + i * cols);
        else dequant_row(codes, scales, p.globals[e], cols, out + i * cols);
    }
}

}  // namespace imp::nvfp4
