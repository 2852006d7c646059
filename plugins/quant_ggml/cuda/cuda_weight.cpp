// quant_ggml CUDA: the Weight of a CUDA executor. matmul: up to kMaxGemvTokens tokens the GEMV kernels read each
// weight byte once; above, the prefill GEMM: F32 weights go to a cuBLASLt fp32 GEMM as they are, BF16 ones to a
// bf16 GEMM with the activations converted to bf16 in the workspace, and every other type is dequantized to bf16
// tile by tile (rows) into the workspace first; optionally (set_gemm_overlap) two tiles take turns: a side stream
// dequantizes tile i + 1 while cuBLASLt multiplies tile i on the executor's stream (events fork and join, so this
// also records into a CUDA graph; NOTES.md: no gain measured on an H100, so off by default). Accumulating GEMMs use
// beta = 1. Nothing here allocates device memory after load.
#include "cuda_weight.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include "imp/cuda/check.h"
#include "imp/cuda/lt_gemm.h"
#include "imp/cuda/staged_upload.h"
#include "imp/error.h"
#include "kernels.h"

namespace imp::ggml::cuda {

namespace {

// GEMM row tiles: enough outputs to fill the GPU twice over (~132 SMs x 128x256 output tiles), and at least
// 32M weights (64 MiB of bf16) per tile: one cuBLASLt call for every matrix of an 8B model but the LM head (row
// tiles of half the matrix ran ~20% slower at 4096 tokens).
constexpr int64_t kMinTileOutputs = int64_t(8) << 20;
constexpr int64_t kMinTileElems = int64_t(32) << 20;
// One side stream per device for the overlapped dequantization (created at load time, kept for the process).
cudaStream_t side_stream() {
    static std::mutex mu;
    static std::map<int, cudaStream_t> streams;
    int dev = 0;
    IMP_CUDA_CHECK(cudaGetDevice(&dev));
    std::lock_guard<std::mutex> lk(mu);
    auto it = streams.find(dev);
    if (it != streams.end()) return it->second;
    cudaStream_t s = nullptr;
    IMP_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return streams.emplace(dev, s).first->second;
}

int64_t round_up(int64_t v, int64_t m) {
    return (v + m - 1) / m * m;
}

class CudaWeight final : public Weight {
public:
    CudaWeight(std::string name, const DeviceLayout& l, void* dev, const CudaOptions& opt)
        : name_(std::move(name)), l_(l), dev_(dev), opt_(opt) {
        rows_ = l.rows;
        cols_ = l.cols;
        if (l_.type != Type::F32 && l_.type != Type::BF16) {
            side_ = side_stream();
            for (cudaEvent_t* e : {&ev_start_, &ev_dq_[0], &ev_dq_[1], &ev_mm_[0], &ev_mm_[1]})
                IMP_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
        }
    }
    ~CudaWeight() override {
        for (cudaEvent_t e : {ev_start_, ev_dq_[0], ev_dq_[1], ev_mm_[0], ev_mm_[1]})
            if (e) cudaEventDestroy(e);
    }

    std::string type() const override { return type_info(l_.type).name; }
    uint64_t bytes() const override { return l_.bytes; }
    void device_ranges(std::vector<DeviceRange>& out) const override { out.push_back({dev_, size_t(l_.bytes)}); }
    const DeviceLayout& layout() const { return l_; }
    const void* data() const { return dev_; }
    const std::string& name() const { return name_; }
    const CudaOptions& options() const { return opt_; }
    CudaOptions& options_for_tests() const { return opt_; }
    int tuned_buckets() const { return lt_.tuned_buckets(); }

    void matmul(Executor& ex, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n_tokens,
                bool accumulate) const override {
        const CudaHandles& h = handles(ex);
        if (n_tokens <= 0) return;
        if (n_tokens > 1 && (x_stride < cols_ || y_stride < rows_))
            throw Error("quant_ggml: tensor '" + name_ + "': matmul strides x " + std::to_string(x_stride) + ", y " +
                        std::to_string(y_stride) + " are below cols " + std::to_string(cols_) + ", rows " +
                        std::to_string(rows_));
        const auto st = static_cast<cudaStream_t>(h.stream);
        if (n_tokens <= kMaxGemvTokens) {
            GemvArgs a = gemv_args(x, x_stride, y, y_stride, n_tokens, accumulate);
            a.pdl = h.pdl;
            gemv(l_, a, h.sm_count, h.cc, st);
            return;
        }
        if (!h.cublaslt)
            throw Error("quant_ggml: tensor '" + name_ + "': executor " + ex.name() + " has no cuBLASLt handle");
        if (l_.type == Type::F32) {
            check_workspace(ex, n_tokens);
            lt_matmul(h, ex, ::imp::cuda::GemmType::F32, dev_, l_.ld, x, x_stride, y, y_stride, rows_, n_tokens,
                      accumulate);
            return;
        }
        gemm(ex, h, n_tokens, y, y_stride, accumulate, [&](uint16_t* xb, int64_t ldb, cudaStream_t s) {
            to_bf16(x, x_stride, n_tokens, cols_, xb, ldb, s);
        });
    }

    // The bf16 GEMM path (not F32): convert(xb, ldb, stream) writes x in bf16 into the workspace, then BF16 weights
    // go to cuBLASLt as stored and other types are dequantized to bf16 tile by tile first.
    template <class Convert>
    void gemm(Executor& ex, const CudaHandles& h, int64_t n_tokens, float* y, int64_t y_stride, bool accumulate,
              Convert&& convert) const {
        const auto st = static_cast<cudaStream_t>(h.stream);
        check_workspace(ex, n_tokens);
        auto* ws = static_cast<uint8_t*>(ex.workspace());
        auto* xb = reinterpret_cast<uint16_t*>(ws);
        const int64_t ldb = round_up(cols_, 8);
        convert(xb, ldb, st);
        if (l_.type == Type::BF16) {
            lt_matmul(h, ex, ::imp::cuda::GemmType::BF16, dev_, l_.ld, xb, ldb, y, y_stride, rows_, n_tokens, accumulate);
            return;
        }
        auto* wt = reinterpret_cast<uint16_t*>(ws + x_part(n_tokens));
        const int64_t tile = tile_rows(n_tokens), ldw = round_up(cols_, 8);
        if (!overlap(n_tokens)) {
            for (int64_t r0 = 0; r0 < rows_; r0 += tile) {
                const int64_t nr = std::min(tile, rows_ - r0);
                dequant_bf16(l_, dev_, r0, nr, wt, ldw, st);
                lt_matmul(h, ex, ::imp::cuda::GemmType::BF16, wt, ldw, xb, ldb, y + r0, y_stride, nr, n_tokens, accumulate);
            }
            return;
        }
        // Tile i goes to buffer i % 2: the side stream dequantizes it once the GEMM of tile i - 2 (same buffer) is
        // done; the GEMM waits for its dequantization. The side stream starts after everything queued before
        // (earlier GEMMs read the workspace) and ends joined: the executor's stream waits for its last event.
        uint16_t* buf[2] = {wt, wt + tile * ldw};
        IMP_CUDA_CHECK(cudaEventRecord(ev_start_, st));
        IMP_CUDA_CHECK(cudaStreamWaitEvent(side_, ev_start_, 0));
        int64_t i = 0;
        for (int64_t r0 = 0; r0 < rows_; r0 += tile, ++i) {
            const int b = int(i & 1);
            const int64_t nr = std::min(tile, rows_ - r0);
            if (i >= 2) IMP_CUDA_CHECK(cudaStreamWaitEvent(side_, ev_mm_[b], 0));
            dequant_bf16(l_, dev_, r0, nr, buf[b], ldw, side_);
            IMP_CUDA_CHECK(cudaEventRecord(ev_dq_[b], side_));
            IMP_CUDA_CHECK(cudaStreamWaitEvent(st, ev_dq_[b], 0));
            lt_matmul(h, ex, ::imp::cuda::GemmType::BF16, buf[b], ldw, xb, ldb, y + r0, y_stride, nr, n_tokens, accumulate);
            IMP_CUDA_CHECK(cudaEventRecord(ev_mm_[b], st));
        }
    }

    // GEMMs (more than kMaxGemvTokens rows) with the RMSNorm or the SwiGLU before them in the kernel that converts x
    // to bf16 (CudaOptions::fuse_gemm_input): bit for bit the separate executor op, to_bf16 and the GEMM.
    bool gemm_fused(Executor& ex, const FusedMatmul& m) const {
        if (!opt_.fuse_gemm_input || m.swiglu || l_.type == Type::F32) return false;
        if ((m.norm != nullptr) == (m.up != nullptr)) return false;  // exactly one of them
        if (m.x_stride < cols_ || m.y_stride < rows_) return false;
        const CudaHandles& h = handles(ex);
        if (!h.cublaslt) return false;
        gemm(ex, h, m.n_tokens, m.y, m.y_stride, m.accumulate, [&](uint16_t* xb, int64_t ldb, cudaStream_t st) {
            if (m.norm)
                to_bf16_norm(m.x, m.x_stride, m.norm, m.norm_eps, m.n_tokens, cols_, xb, ldb, h.pdl, st);
            else
                to_bf16_swiglu(m.x, m.up, m.x_stride, m.n_tokens, cols_, xb, ldb, h.pdl, st);
        });
        return true;
    }

    // Decode GEMVs with the RMSNorm prologue and / or the SwiGLU epilogue (gemv_tiled.cuh), when the options allow
    // each asked part and the kernels can (gemv_fusable).
    bool matmul_fused(Executor& ex, const FusedMatmul& m) const override {
        if (m.n_tokens > kMaxGemvTokens) return gemm_fused(ex, m);
        if (m.up) return false;  // the GEMVs take no SwiGLU input
        if ((m.norm && !opt_.fuse_norm) || (m.swiglu && !opt_.fuse_swiglu)) return false;
        if (m.n_tokens < 1 || m.n_tokens > kMaxGemvTokens) return false;
        const int64_t out_cols = m.swiglu ? rows_ / 2 : rows_;
        if (m.n_tokens > 1 && (m.x_stride < cols_ || m.y_stride < out_cols)) return false;
        GemvArgs a = gemv_args(m.x, m.x_stride, m.y, m.y_stride, m.n_tokens, m.accumulate);
        a.norm = m.norm;
        a.norm_eps = m.norm_eps;
        a.swiglu = m.swiglu;
        if (!gemv_fusable(l_, a)) return false;
        const CudaHandles& h = handles(ex);
        a.pdl = h.pdl;
        gemv(l_, a, h.sm_count, h.cc, static_cast<cudaStream_t>(h.stream));
        return true;
    }

    void get_rows(Executor& ex, const int32_t* ids, int64_t n, float* out) const override {
        const CudaHandles& h = handles(ex);
        cuda::get_rows(l_, dev_, ids, n, out, static_cast<cudaStream_t>(h.stream));
    }

    uint64_t workspace_bytes(int64_t n_tokens) const override {
        if (n_tokens <= kMaxGemvTokens) return 0;
        return gemm_part(n_tokens) + tune_part(n_tokens);
    }

private:
    GemvArgs gemv_args(const float* x, int64_t xs, float* y, int64_t ys, int64_t n_tokens, bool accumulate) const {
        GemvArgs a;
        a.w = dev_;
        a.x = x;
        a.xs = xs;
        a.y = y;
        a.ys = ys;
        a.n_tokens = int(n_tokens);
        a.splits = opt_.splits;
        a.kw = opt_.kw;
        a.dp4a = opt_.dp4a;
        a.q8_dp4a = opt_.q8_dp4a;
        a.prefetch = opt_.prefetch;
        a.plain_pdl = opt_.plain_pdl;
        a.l2_prefetch = opt_.l2_prefetch;
        a.accumulate = accumulate;
        return a;
    }

    uint64_t x_part(int64_t n_tokens) const { return uint64_t(round_up(n_tokens * round_up(cols_, 8) * 2, 256)); }

    // Workspace of a GEMM of n_tokens rows: gemm_part = [x in bf16 (not F32)][dequantized weight tiles (block
    // types, F16)], then tune_part = [with gemm_tune: the tuning target of accumulating calls, rows_ x n_tokens floats].
    uint64_t gemm_part(int64_t n_tokens) const {
        if (l_.type == Type::F32) return 0;
        if (l_.type == Type::BF16) return x_part(n_tokens);
        const uint64_t tiles = overlap(n_tokens) ? 2 : 1;
        return uint64_t(round_up(int64_t(x_part(n_tokens) + tiles * uint64_t(tile_rows(n_tokens)) *
                                                                 uint64_t(round_up(cols_, 8)) * 2),
                                 256));
    }
    uint64_t tune_part(int64_t n_tokens) const {
        return opt_.gemm_tune && opt_.tune_scratch ? uint64_t(round_up(rows_ * n_tokens * 4, 256)) : 0;
    }

    void check_workspace(Executor& ex, int64_t n_tokens) const {
        const uint64_t need = workspace_bytes(n_tokens);
        if (need && (ex.workspace_bytes() < need || !ex.workspace()))
            throw Error("quant_ggml: tensor '" + name_ + "': matmul of " + std::to_string(n_tokens) + " tokens needs " +
                        std::to_string(need) + " bytes of workspace, the executor reserved " +
                        std::to_string(ex.workspace_bytes()));
    }

    int64_t tile_rows(int64_t n_tokens) const {
        int64_t t = opt_.tile_rows;
        if (t <= 0) t = std::max((kMinTileOutputs + n_tokens - 1) / n_tokens, kMinTileElems / cols_);
        t = round_up(std::max<int64_t>(t, 1), 128);
        return std::min(t, rows_);
    }

    // Two tiles in turn on two streams: when the options ask for it and there is more than one tile.
    bool overlap(int64_t n_tokens) const { return side_ && opt_.overlap > 0 && tile_rows(n_tokens) < rows_; }

    const CudaHandles& handles(const Executor& ex) const {
        const CudaHandles* h = ex.kind() == DeviceKind::CUDA ? ex.cuda() : nullptr;
        if (!h)
            throw Error("quant_ggml: tensor '" + name_ + "' lives on a CUDA device; executor " + ex.name() +
                        " gives no CUDA handles");
        return *h;
    }

    // D[m x n] (column-major, ld ldd; i.e. y[t * ldd + r]) = A^T B, A: k x m (W rows, ld lda), B: k x n (x rows).
    // accumulate: D += A^T B (beta = 1; C is D, read once per output). With gemm_tune, the timing runs (beta 0) of a
    // bucket's first eager call write D itself when it is overwritten anyway, else the workspace's tuning part.
    void lt_matmul(const CudaHandles& h, Executor& ex, ::imp::cuda::GemmType type, const void* A, int64_t lda,
                   const void* B, int64_t ldb, float* D, int64_t ldd, int64_t m, int64_t n, bool accumulate) const {
        ::imp::cuda::GemmCall c;
        c.type = type;
        c.a = A;
        c.lda = lda;
        c.b = B;
        c.ldb = ldb;
        c.d = D;
        c.ldd = ldd;
        c.m = m;
        c.n = n;
        c.k = cols_;
        c.accumulate = accumulate;
        if (opt_.gemm_tune) {
            if (!accumulate)
                c.tune_d = D;
            else if (opt_.tune_scratch && ldd <= rows_)  // the tuning part holds rows_ x n floats
                c.tune_d = reinterpret_cast<float*>(static_cast<uint8_t*>(ex.workspace()) + gemm_part(n));
        }
        lt_.run(h, c);
    }

    std::string name_;
    DeviceLayout l_;
    void* dev_;
    mutable CudaOptions opt_;  // mutable: tests and the bench switch variants on a loaded weight
    cudaStream_t side_ = nullptr;  // overlapped dequantization (block types and F16)
    cudaEvent_t ev_start_ = nullptr, ev_dq_[2] = {}, ev_mm_[2] = {};
    ::imp::cuda::LtGemm lt_{"quant_ggml: tensor '" + name_ + "'"};
};

std::string supported_list() {
    std::string s;
    for (int i = 0; i < kTypeCount; ++i)
        if (cuda_supports(Type(i))) s += std::string(s.empty() ? "" : ",") + type_info(Type(i)).name;
    return s;
}

void require_supported(const std::string& tensor, Type t) {
    if (!cuda_supports(t))
        throw Error("quant_ggml: tensor '" + tensor + "' has type " + type_info(t).name +
                    ", which has no CUDA kernels (CUDA supports " + supported_list() + ")");
}

}  // namespace

uint64_t device_bytes(const std::string& tensor, Type t, int64_t rows, int64_t cols) {
    require_supported(tensor, t);
    return device_layout(t, rows, cols).bytes;
}

std::unique_ptr<Weight> load_weight(const std::string& tensor, Type t, int64_t cols, const std::vector<RowPart>& parts,
                                    uint64_t row_bytes, Executor& ex, const CudaOptions& opt) {
    require_supported(tensor, t);
    if (ex.kind() != DeviceKind::CUDA || !ex.cuda())
        throw Error("quant_ggml: tensor '" + tensor + "': executor " + ex.name() + " gives no CUDA handles");
    int64_t rows = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (device_layout(t, parts[i].rows, cols).tiled && i + 1 < parts.size() && parts[i].rows % 16 != 0)
            throw Error("quant_ggml: fused weight '" + tensor + "': part " + std::to_string(i) + " has " +
                        std::to_string(parts[i].rows) + " rows, not a multiple of 16 (the tile rows)");
        rows += parts[i].rows;
    }
    const DeviceLayout l = device_layout(t, rows, cols);
    prepare_kernels(t);
    void* dev = ex.alloc(l.bytes, tensor.c_str());
    // Repack into the process's pinned staging buffer (imp/cuda/staged_upload.h; load time only): no fresh host
    // allocation to fault in per weight, and the copy to the GPU runs at DMA speed.
    ::imp::cuda::StagedUpload up(*ex.cuda(), l.bytes, 1);
    uint8_t* staging = up.host();
    // Each part fills its own rows of the layout: whole row groups (block types) or rows of l.ld elements.
    uint64_t off = 0;
    for (const auto& p : parts) {
        const DeviceLayout pl = device_layout(t, p.rows, cols);
        repack(pl, p.data, row_bytes, staging + off);
        off += pl.bytes;
    }
    if (off != l.bytes) throw Error("quant_ggml: fused weight '" + tensor + "': parts fill " + std::to_string(off) +
                                    " of " + std::to_string(l.bytes) + " bytes");
    up.send(dev, l.bytes);
    up.finish();
    return std::make_unique<CudaWeight>(tensor, l, dev, opt);
}

namespace {
const CudaWeight& weight_of(const Weight& w) {
    const auto* cw = dynamic_cast<const CudaWeight*>(&w);
    if (!cw) throw Error("quant_ggml: weight of type " + w.type() + " is not a CUDA weight of quant_ggml");
    return *cw;
}
CudaOptions& options_of(const Weight& w) { return weight_of(w).options_for_tests(); }
}  // namespace

void set_gemv_plan(const Weight& w, int splits, int warps_per_row_group) {
    options_of(w).splits = splits;
    options_of(w).kw = warps_per_row_group;
}
void set_gemm_tile_rows(const Weight& w, int64_t rows) { options_of(w).tile_rows = rows; }
void set_gemv_fusion(const Weight& w, bool norm, bool swiglu) {
    options_of(w).fuse_norm = norm;
    options_of(w).fuse_swiglu = swiglu;
}
void set_gemv_dp4a(const Weight& w, bool dp4a) { options_of(w).dp4a = dp4a; }
void set_gemm_fusion(const Weight& w, bool on) { options_of(w).fuse_gemm_input = on; }
void set_gemm_tune(const Weight& w, bool on, bool scratch) {
    options_of(w).gemm_tune = on;
    options_of(w).tune_scratch = scratch;
}
int gemm_tuned_buckets(const Weight& w) { return weight_of(w).tuned_buckets(); }
void set_gemv_variants(const Weight& w, bool q8_dp4a, bool prefetch, bool plain_pdl, int l2_prefetch) {
    CudaOptions& o = options_of(w);
    o.l2_prefetch = l2_prefetch;
    o.q8_dp4a = q8_dp4a;
    o.prefetch = prefetch;
    o.plain_pdl = plain_pdl;
}
void set_gemm_overlap(const Weight& w, int mode) { options_of(w).overlap = mode; }

std::unique_ptr<Weight> clone_weight(const Weight& w, Executor& ex) {
    const auto* cw = dynamic_cast<const CudaWeight*>(&w);
    if (!cw || !ex.cuda()) throw Error("quant_ggml: clone_weight needs a CUDA weight and a CUDA executor");
    void* dev = ex.alloc(cw->layout().bytes, cw->name().c_str());
    IMP_CUDA_CHECK(cudaMemcpyAsync(dev, cw->data(), cw->layout().bytes, cudaMemcpyDeviceToDevice,
                            static_cast<cudaStream_t>(ex.cuda()->stream)));
    IMP_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(ex.cuda()->stream)));
    return std::make_unique<CudaWeight>(cw->name(), cw->layout(), dev, cw->options());
}

}  // namespace imp::ggml::cuda
