// Weight-only CUDA weights (wo_weight.h). Weight::matmul:
//   - up to kMaxGemvTokens tokens (with the FP8 GEMM: up to gemv_max_tokens): the GEMV (wo_gemv.cu) reads every
//     weight byte once;
//   - above, with the FP8 GEMM (Options::fp8_gemm, FP8 codes or the NVFP4 FP8 copy): the activations are quantized
//     to E4M3 dynamically, and cuBLASLt multiplies them on the FP8 tensor cores, accumulating into y (beta = 1):
//     - per tensor (default): one unit (amax over the call's rows, two passes over x), the weight's per-tensor
//       scale as A scale. A per-row weight scale goes through the fp32 buffer below and an epilogue;
//     - per token (fp8_per_token, layouts with the scale vector): one unit per token in one pass over x; the
//       weight's per-row scale vector and the token units as cuBLASLt outer-vector A / B scales, so per-row
//       weights multiply directly too. Should cuBLASLt refuse outer-vector scales, the unscaled FP8 GEMM goes
//       through the buffer and the epilogue applies both (one stderr line per weight).
//     A row count or token count that is not a multiple of 16, or an output stride that is not a multiple of 4
//     goes through an fp32 buffer in the workspace ([tokens padded to 16, rows padded to 16]) and an epilogue
//     y (+)= buffer * scales. With gemm_tune, the first eager call of each GEMM shape times cuBLASLt's algorithms. Every call keeps cuBLASLt's FP8 rules (TN, 16-byte aligned matrices and
//     scale pointers, leading dimensions of whole 16 bytes). Should cuBLASLt still refuse a shape, that shape goes
//     through the bf16 tiles below, with one line on stderr per weight (the workspace covers both paths);
//   - else: weight rows are dequantized tile by tile to bf16 in the workspace (exact for NVFP4 and per-tensor FP8;
//     the per-tensor factor is the GEMM's alpha) and multiplied by cuBLASLt with the activations converted to bf16.
// The expert weights are in wo_experts.cpp. Nothing allocates device memory after load.
#include "wo_weight.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "imp/cuda/check.h"
#include "imp/cuda/staged_upload.h"
#include "load_parallel.h"
#include "imp/error.h"
#include "imp/cuda/lt_gemm.h"
#include "wo_kernels.h"

namespace imp::wo {
using cuda::GemmCall;
using cuda::GemmType;
using cuda::LtGemm;

namespace {

constexpr int64_t kMinTileOutputs = int64_t(8) << 20;
constexpr int64_t kMinTileElems = int64_t(32) << 20;

int64_t round_up(int64_t v, int64_t m) {
    return (v + m - 1) / m * m;
}

class WoWeight final : public Weight {
public:
    WoWeight(std::string name, const Layout& l, uint8_t* dev, const Options& o, float bf16_alpha)
        : name_(std::move(name)), l_(l), dev_(dev), o_(o), alpha_(bf16_alpha), lt_(name_ + " weight") {
        rows_ = l.rows;
        cols_ = l.cols;
    }
    std::string type() const override { return name_; }
    uint64_t bytes() const override { return l_.bytes; }

    void matmul(Executor& ex, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n_tokens,
                bool accumulate) const override {
        const CudaHandles& h = cuda_handles(ex, name_ + " weight");
        if (n_tokens <= 0) return;
        if (n_tokens > 1 && (x_stride < cols_ || y_stride < rows_))
            throw Error(name_ + " weight [" + std::to_string(rows_) + ", " + std::to_string(cols_) + "]: matmul strides x " + std::to_string(x_stride) + ", y " +
                        std::to_string(y_stride) + " are below cols " + std::to_string(cols_) + ", rows " +
                        std::to_string(rows_));
        const auto st = static_cast<cudaStream_t>(h.stream);
        const bool small = n_tokens <= kMaxGemvTokens;
        if (n_tokens > gemv_tokens()) {  // the prefill path (small: the FP8 GEMM, else the GEMV below)
            const uint64_t need = workspace_bytes(n_tokens);
            if (ex.workspace_bytes() < need || !ex.workspace())
                throw Error(name_ + " weight [" + std::to_string(rows_) + ", " + std::to_string(cols_) +
                            "]: matmul of " + std::to_string(n_tokens) + " tokens needs " + std::to_string(need) +
                            " bytes of workspace, the executor reserved " + std::to_string(ex.workspace_bytes()));
            auto* ws = static_cast<uint8_t*>(ex.workspace());
            if (fp8_path() && matmul_fp8(h, ws, x, x_stride, y, y_stride, n_tokens, accumulate)) return;
            if (!small) {
                matmul_bf16(h, ws, x, x_stride, y, y_stride, n_tokens, accumulate);
                return;
            }
        }
        gemv(l_, gemv_args(h, x, x_stride, y, y_stride, n_tokens, accumulate), st);
    }

    // The RMSNorm in the GEMV (setting fuse_norm): calls the GEMV takes (up to gemv_tokens(), gemv_norm_applies) on
    // matrices of at most 128 rows per SM: every CTA stages and normalizes x again, which a few waves of CTAs
    // (a layer's projections) hide and thousands (an LM head: its norm stays a kernel of its own) would not.
    // Everything else is refused and runs as the separate ops.
    bool matmul_fused(Executor& ex, const FusedMatmul& m) const override {
        if (!o_.fuse_norm || !m.norm || m.swiglu || m.up || m.n_tokens <= 0 || m.n_tokens > gemv_tokens() || !m.x ||
            (o_.gemv_mma_tokens > 0 && m.n_tokens >= o_.gemv_mma_tokens) ||
            !m.y || (m.n_tokens > 1 && (m.x_stride < cols_ || m.y_stride < rows_)) ||
            !gemv_norm_applies(l_, m.n_tokens, m.x, m.x_stride, m.norm))
            return false;
        const CudaHandles& h = cuda_handles(ex, name_ + " weight");
        if (h.sm_count <= 0 || rows_ > int64_t(h.sm_count) * 128) return false;
        GemvArgs a = gemv_args(h, m.x, m.x_stride, m.y, m.y_stride, m.n_tokens, m.accumulate);
        a.norm = m.norm;  // the Regs plan whatever the setting's
        a.norm_eps = m.norm_eps;
        gemv(l_, a, static_cast<cudaStream_t>(h.stream));
        return true;
    }

    void get_rows(Executor& ex, const int32_t* ids, int64_t n, float* out) const override {
        const CudaHandles& h = cuda_handles(ex, name_ + " weight");
        wo::get_rows(l_, dev_, ids, n, out, static_cast<cudaStream_t>(h.stream));
    }

    uint64_t workspace_bytes(int64_t n_tokens) const override {
        if (n_tokens <= gemv_tokens()) return 0;
        const int64_t np = round_up(n_tokens, 16);
        const uint64_t fp8 = round256(uint64_t(np * l_.cp)) + kStatBytes + round256(uint64_t(np) * 4) +
                             round256(uint64_t(np * l_.rows_p16) * 4);
        if (n_tokens <= kMaxGemvTokens) return fp8;  // a refused FP8 GEMM of so few tokens runs the GEMV
        const uint64_t bf16 = round256(uint64_t(n_tokens * l_.cp) * 2) + uint64_t(tile_rows(n_tokens) * l_.cp) * 2;
        return fp8_path() ? std::max(bf16, fp8) : bf16;
    }

    // FP8 GEMM calls cuBLASLt refused (they went through bf16 tiles).
    int64_t fp8_refusals() const { return refusals_.load(); }
    const Layout& layout() const { return l_; }
    // What the GEMV reads: codes, NVFP4 scales and the per-matrix scales (not the prefill's FP8 copy or scale vector).
    void device_ranges(std::vector<DeviceRange>& out) const override {
        out.push_back({dev_, size_t(l_.post_off + round256(uint64_t(l_.n_post) * 4))});
    }
    const uint8_t* device_bytes() const { return dev_; }
    // Per-token FP8 GEMM calls whose outer-vector scales cuBLASLt refused (they went through the epilogue).
    int64_t vec_refusals() const { return vec_refusals_.load(); }

private:
    bool fp8_path() const { return o_.fp8_gemm && (l_.codec == Codec::FP8 || l_.has_fp8); }
    bool per_token() const { return o_.fp8_per_token && l_.has_vec; }
    // A dense GEMV call of this weight with the settings' plan.
    GemvArgs gemv_args(const CudaHandles& h, const float* x, int64_t xs, float* y, int64_t ys, int64_t n_tokens,
                       bool accumulate) const {
        GemvArgs a;
        a.w = dev_;
        a.x = x;
        a.xs = xs;
        a.y = y;
        a.ys = ys;
        a.n_tokens = int(n_tokens);
        a.accumulate = accumulate;
        a.kw = o_.gemv_kw;
        a.short_rows = o_.gemv_short_rows;
        a.plan = gemv_plan(o_);
        a.sm_count = h.sm_count;
        a.pdl = h.pdl;
        a.stage_x = o_.gemv_stage_x == 2 && h.sm_count > 0 && rows_ <= int64_t(h.sm_count) * 128;
        a.x_int8 = o_.gemv_int8_x == 2;
        a.q8_warps = o_.gemv_int8_warps;
        a.mma_tokens = o_.gemv_mma_tokens;
        return a;
    }

    // The most tokens the GEMV takes (more: the prefill path).
    int64_t gemv_tokens() const {
        return fp8_path() ? std::clamp<int64_t>(o_.gemv_max_tokens, 1, kMaxGemvTokens) : kMaxGemvTokens;
    }

    int64_t tile_rows(int64_t n_tokens) const {
        int64_t t = o_.tile_rows;
        if (t <= 0) t = std::max((kMinTileOutputs + n_tokens - 1) / n_tokens, kMinTileElems / l_.cp);
        t = round_up(std::max<int64_t>(t, 1), 128);
        return std::min(t, rows_);
    }

    // False when cuBLASLt refuses the call (the caller takes the bf16 tiles, or the GEMV up to 8 tokens).
    bool matmul_fp8(const CudaHandles& h, uint8_t* ws, const float* x, int64_t xs, float* y, int64_t ys, int64_t n,
                    bool accumulate) const {
        const auto st = static_cast<cudaStream_t>(h.stream);
        const int64_t np = round_up(n, 16);
        const uint64_t xq_bytes = round256(uint64_t(np * l_.cp)), units_bytes = round256(uint64_t(np) * 4);
        auto* xq = ws;
        auto* stat = reinterpret_cast<float*>(ws + xq_bytes);
        auto* units = reinterpret_cast<float*>(ws + xq_bytes + kStatBytes);
        auto* tmp = reinterpret_cast<float*>(ws + xq_bytes + kStatBytes + units_bytes);
        const bool token = per_token();
        // Rows n..np of xq stay as they are: the direct path multiplies only n rows, the buffered one writes the
        // padded rows of tmp, which the epilogue never reads.
        if (token)
            quantize_fp8_rows(x, xs, n, cols_, xq, l_.cp, units, st);
        else
            quantize_fp8(x, xs, n, cols_, xq, l_.cp, stat, st);
        const float* post = reinterpret_cast<const float*>(dev_ + l_.post_off);
        const auto* vec = reinterpret_cast<const float*>(dev_ + l_.vec_off);
        const bool per_row = l_.codec == Codec::FP8 && l_.n_post != 1;
        const bool aligned = rows_ % 16 == 0 && n % 16 == 0 && ys % 4 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
        const bool direct = aligned && (token || !per_row);
        GemmCall c;
        c.type = GemmType::FP8;
        c.a = l_.codec == Codec::NVFP4 ? dev_ + l_.fp8_off : dev_;
        c.lda = l_.cp;
        c.b = xq;
        c.ldb = l_.cp;
        c.k = l_.cp;
        if (token) {  // outer vectors: the weight's scale per row, the activations' unit per token
            c.a_scale = vec;
            c.b_scale = units;
            c.vec_scales = true;
        } else {
            c.a_scale = l_.codec == Codec::NVFP4 ? reinterpret_cast<const float*>(dev_ + l_.fp8_scale_off)
                                                 : (per_row ? nullptr : post);
            c.b_scale = stat + kStatUnit;
        }
        c.fast_accum = o_.fast_accum;
        if (direct) {
            c.d = y;
            c.ldd = ys;
            c.m = rows_;
            c.n = n;
            c.accumulate = accumulate;
        } else {
            c.d = tmp;
            c.ldd = l_.rows_p16;
            c.m = l_.rows_p16;
            c.n = np;
        }
        // Tuning runs write tmp: only when the output is tmp or no wider than it.
        if (o_.gemm_tune && (!direct || ys <= l_.rows_p16)) c.tune_d = tmp;
        std::string why;
        if (o_.fp8_refuse_all) {
            why = "refused by the fp8_refuse_all test option";
        } else if (!(token && o_.fp8_refuse_vec) && lt_.try_run(h, c, &why)) {
            if (!direct)
                scale_rows(tmp, l_.rows_p16, rows_, n, per_row && !token ? post : nullptr, nullptr, y, ys, accumulate,
                           st);
            return true;
        } else if (token) {
            // Outer-vector scales refused: the unscaled FP8 GEMM into tmp, both scales in the epilogue.
            if (vec_refusals_.fetch_add(1) == 0)
                std::fprintf(stderr, "imp: %s weight [%lld, %lld]: cuBLASLt refuses the outer-vector FP8 GEMM of %lld "
                             "tokens (%s); per-token scales go through an epilogue\n", name_.c_str(),
                             (long long)rows_, (long long)cols_, (long long)n,
                             o_.fp8_refuse_vec ? "refused by the fp8_refuse_vec test option" : why.c_str());
            GemmCall u = c;
            u.a_scale = u.b_scale = nullptr;
            u.vec_scales = false;
            u.d = tmp;
            u.ldd = l_.rows_p16;
            u.m = l_.rows_p16;
            u.n = np;
            u.accumulate = false;
            u.tune_d = o_.gemm_tune ? tmp : nullptr;
            if (lt_.try_run(h, u, &why)) {
                scale_rows(tmp, l_.rows_p16, rows_, n, vec, units, y, ys, accumulate, st);
                return true;
            }
        }
        if (refusals_.fetch_add(1) == 0)
            std::fprintf(stderr, "imp: %s weight [%lld, %lld]: cuBLASLt refuses the FP8 GEMM of %lld tokens (%s); "
                         "refused shapes go through bf16 tiles (up to 8 tokens: the GEMV)\n", name_.c_str(), (long long)rows_, (long long)cols_,
                         (long long)n, why.c_str());
        return false;
    }

    void matmul_bf16(const CudaHandles& h, uint8_t* ws, const float* x, int64_t xs, float* y, int64_t ys, int64_t n,
                     bool accumulate) const {
        const auto st = static_cast<cudaStream_t>(h.stream);
        auto* xb = reinterpret_cast<uint16_t*>(ws);
        auto* wt = reinterpret_cast<uint16_t*>(ws + round256(uint64_t(n * l_.cp) * 2));
        to_bf16(x, xs, n, cols_, xb, l_.cp, st);
        const int64_t tile = tile_rows(n);
        for (int64_t r0 = 0; r0 < rows_; r0 += tile) {
            const int64_t nr = std::min(tile, rows_ - r0);
            dequant_bf16(l_, dev_, r0, nr, wt, l_.cp, st);
            GemmCall c;
            c.type = GemmType::BF16;
            c.a = wt;
            c.lda = l_.cp;
            c.b = xb;
            c.ldb = l_.cp;
            c.d = y + r0;
            c.ldd = ys;
            c.m = nr;
            c.n = n;
            c.k = l_.cp;
            c.alpha = alpha_;
            c.accumulate = accumulate;
            lt_.run(h, c);
        }
    }

    std::string name_;
    Layout l_;
    uint8_t* dev_;
    Options o_;
    float alpha_;
    LtGemm lt_;
    mutable std::atomic<int64_t> refusals_{0};
    mutable std::atomic<int64_t> vec_refusals_{0};
};

}  // namespace

void upload_matrices(Executor& ex, const Layout& l, const FillRows& fill, int64_t n_matrix, uint8_t* dev) {
    if (n_matrix <= 0 || l.bytes == 0) return;
    constexpr uint64_t kBatchBytes = 128ull << 20;
    const int64_t batch = std::clamp<int64_t>(int64_t(kBatchBytes / l.bytes), 1, n_matrix);
    // The host threads fill one batch while the previous batch's copy to the GPU runs (imp/cuda/staged_upload.h).
    ::imp::cuda::StagedUpload up(cuda_handles(ex, "weight upload"), uint64_t(batch) * l.bytes,
                                 (n_matrix + batch - 1) / batch);
    // Work items of about 4 MiB: zeroing slices of the batch, then row ranges of each matrix.
    constexpr uint64_t kItemBytes = 4ull << 20;
    const uint64_t row_bytes = std::max<uint64_t>(1, l.bytes / uint64_t(l.rows));  // rows > 0 (the formats check)
    const int64_t rows_per_item = std::max<int64_t>(1, int64_t(kItemBytes / row_bytes));
    const int64_t items_per_matrix = (l.rows + rows_per_item - 1) / rows_per_item;
    for (int64_t e0 = 0; e0 < n_matrix; e0 += batch) {
        const int64_t n = std::min(batch, n_matrix - e0);
        const uint64_t total = uint64_t(n) * l.bytes;
        uint8_t* host = up.host();
        quant_hf::parallel_items(int64_t((total + kItemBytes - 1) / kItemBytes), [&](int64_t i) {
            const uint64_t off = uint64_t(i) * kItemBytes;
            std::memset(host + off, 0, size_t(std::min(kItemBytes, total - off)));
        });
        quant_hf::parallel_items(n * items_per_matrix, [&](int64_t i) {
            const int64_t m = i / items_per_matrix, r0 = (i % items_per_matrix) * rows_per_item;
            fill(e0 + m, r0, std::min(l.rows, r0 + rows_per_item), host + uint64_t(m) * l.bytes);
        });
        up.send(dev + uint64_t(e0) * l.bytes, total);
    }
    up.finish();
}

int64_t fp8_refusals(const Weight& w) {
    const auto* wo = dynamic_cast<const WoWeight*>(&w);
    return wo ? wo->fp8_refusals() : -1;
}

const uint8_t* gemv_matrix(const Weight& w, const Layout& l) {
    const auto* wo = dynamic_cast<const WoWeight*>(&w);
    if (!wo) return nullptr;
    const Layout& o = wo->layout();
    const bool same = o.codec == l.codec && o.rows == l.rows && o.cols == l.cols && o.ld == l.ld &&
                      o.scale_ld == l.scale_ld && o.scale_off == l.scale_off && o.post_off == l.post_off &&
                      o.n_post == l.n_post;
    return same ? wo->device_bytes() : nullptr;
}

int64_t fp8_vec_refusals(const Weight& w) {
    const auto* wo = dynamic_cast<const WoWeight*>(&w);
    return wo ? wo->vec_refusals() : -1;
}

const CudaHandles& cuda_handles(const Executor& ex, const std::string& what) {
    const CudaHandles* h = ex.kind() == DeviceKind::CUDA ? ex.cuda() : nullptr;
    if (!h) throw Error(what + " lives on a CUDA device; executor " + ex.name() + " gives no CUDA handles");
    return *h;
}

std::unique_ptr<Weight> make_weight(Executor& ex, std::string name, const Layout& l, const FillRows& fill,
                                    const Options& o, float bf16_alpha, float fp8_inv_unit) {
    const CudaHandles& h = cuda_handles(ex, name + " weight");
    gemv_init(gemv_plan(o));
    auto* dev = static_cast<uint8_t*>(ex.alloc(l.bytes, name.c_str()));
    upload_matrices(ex, l, fill, 1, dev);
    if (l.has_fp8) {
        const auto st = static_cast<cudaStream_t>(h.stream);
        nvfp4_to_fp8(l, dev, fp8_inv_unit, st);
        IMP_CUDA_CHECK(cudaStreamSynchronize(st));
    }
    return std::make_unique<WoWeight>(std::move(name), l, dev, o, bf16_alpha);
}

}  // namespace imp::wo
