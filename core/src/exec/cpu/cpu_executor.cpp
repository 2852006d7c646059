#include "exec/cpu/cpu_executor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

#include "exec/cpu/thread_pool.h"
#include "imp/error.h"
#include "model/host_budget.h"
#include "runtime/sampler.h"

namespace imp {

namespace {

// Element access for the KV cache types the CPU supports.
struct F32Elem {
    using T = float;
    static float load(const float* p) { return *p; }
    static void store(float* p, float v) { *p = v; }
};
struct F16Elem {
    using T = uint16_t;
    static float load(const uint16_t* p) { return fp16_to_f32(*p); }
    static void store(uint16_t* p, float v) { *p = f32_to_fp16(v); }
};
struct BF16Elem {
    using T = uint16_t;
    static float load(const uint16_t* p) { return bf16_to_f32(*p); }
    static void store(uint16_t* p, float v) { *p = f32_to_bf16(v); }
};

struct F8Elem {  // FP8 E4M3 with a per-cache scale: stored = x / scale
    using T = uint8_t;
    float scale = 1.f;
    float load(const uint8_t* p) const { return fp8_e4m3_to_f32(*p) * scale; }
    void store(uint8_t* p, float v) const { *p = f32_to_fp8_e4m3(v / scale); }
};

// Calls f(k_elem, v_elem) with the element accessors of the KV dtype.
template <typename F> void dispatch_kv(const KVCacheView& kv, F&& f) {
    switch (kv.dtype) {
        case DType::F32: f(F32Elem{}, F32Elem{}); return;
        case DType::F16: f(F16Elem{}, F16Elem{}); return;
        case DType::BF16: f(BF16Elem{}, BF16Elem{}); return;
        case DType::F8_E4M3: f(F8Elem{kv.k_scale}, F8Elem{kv.v_scale}); return;
        default: throw Error(std::string("cpu executor: KV cache dtype ") + dtype_name(kv.dtype) +
                             " is not supported (F32, F16, BF16, F8_E4M3)");
    }
}

void check_kv(const char* op, const KVCacheView& kv) {
    if (kv.block_size <= 0 || kv.n_blocks <= 0)
        throw Error(std::string(op) + ": KV pool of " + std::to_string(kv.n_blocks) + " blocks of " +
                    std::to_string(kv.block_size) + " positions");
}

// Checks every slot of slot_mapping (-1 = skip) against the pool.
void check_slots(const char* op, const KVCacheView& kv, const int32_t* slots, int64_t n_tokens) {
    check_kv(op, kv);
    const int64_t n_slots = kv.n_blocks * kv.block_size;
    for (int64_t t = 0; t < n_tokens; ++t)
        if (slots[t] < -1 || slots[t] >= n_slots)
            throw Error(std::string(op) + ": KV slot " + std::to_string(slots[t]) + " of row " + std::to_string(t) +
                        " is outside the pool of " + std::to_string(n_slots) + " slots");
}

// KV slot of position pos of sequence seq (see StepBatch::block_tables), checked against the pool.
inline int64_t kv_slot(const KVCacheView& kv, const StepBatch& b, int32_t seq, int64_t pos) {
    const int64_t blk = pos / kv.block_size;
    const int64_t phys = b.block_tables[int64_t(seq) * b.max_blocks + blk];
    return phys * kv.block_size + pos % kv.block_size;
}

// Checks the rows of a step against the pool: sequence index, position within max_blocks, every block used in range.
void check_step(const char* op, const KVCacheView& kv, const StepBatch& b) {
    check_kv(op, kv);
    for (int64_t t = 0; t < b.n_tokens; ++t) {
        const int32_t seq = b.token_seq[t];
        const int64_t pos = b.token_pos[t];
        if (seq < 0 || seq >= b.n_seqs)
            throw Error(std::string(op) + ": row " + std::to_string(t) + " names sequence " + std::to_string(seq) +
                        " of " + std::to_string(b.n_seqs));
        if (pos < 0 || pos >= int64_t(b.max_blocks) * kv.block_size)
            throw Error(std::string(op) + ": position " + std::to_string(pos) + " of row " + std::to_string(t) +
                        " is outside the " + std::to_string(int64_t(b.max_blocks) * kv.block_size) +
                        " positions a sequence can hold");
        for (int64_t blk = 0; blk <= pos / kv.block_size; ++blk) {
            const int32_t phys = b.block_tables[int64_t(seq) * b.max_blocks + blk];
            if (phys < 0 || phys >= kv.n_blocks)
                throw Error(std::string(op) + ": block " + std::to_string(phys) + " of sequence " +
                            std::to_string(seq) + " is outside the pool of " + std::to_string(kv.n_blocks) + " blocks");
        }
    }
}

// The hot loops of rms_norm and attention get an AVX2+FMA clone on x86 (picked at load time), since the build
// targets baseline x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IMP_CPU_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define IMP_CPU_CLONES
#endif

// fp32 dot product with 8 independent partial sums (the compiler keeps them in vector registers).
IMP_CPU_CLONES float dot(const float* a, const float* b, int64_t n) {
    float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; ++l) s[l] += a[i + l] * b[i + l];
    for (; i < n; ++i) s[0] += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

// y += w * x
IMP_CPU_CLONES void axpy(float* y, float w, const float* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
}

// Per-thread working memory for ops, grown on demand and kept.
float* thread_buffer(size_t floats, int which) {
    thread_local std::vector<float> bufs[3];
    auto& b = bufs[which];
    if (b.size() < floats) b.resize(floats);
    return b.data();
}

}  // namespace

CpuExecutor::CpuExecutor(int threads) {
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    pool_ = std::make_unique<ThreadPool>(threads);
}

CpuExecutor::~CpuExecutor() {
    pool_.reset();
    for (void* p : blocks_) std::free(p);
}

std::string CpuExecutor::name() const { return "cpu (" + std::to_string(threads()) + " threads)"; }
int CpuExecutor::threads() const { return pool_->size(); }

void* CpuExecutor::alloc(size_t bytes, const char* tag) {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p)
        throw Error(std::string("cpu executor: out of host memory allocating ") + std::to_string(bytes) +
                    " bytes for '" + (tag ? tag : "?") + "' (" + std::to_string(allocated_) + " bytes already held)");
    std::memset(p, 0, rounded);
    std::lock_guard<std::mutex> lk(mem_mu_);
    blocks_.push_back(p);
    allocated_ += rounded;
    return p;
}

uint64_t CpuExecutor::available_bytes() const { return host_memory_free(); }

void CpuExecutor::upload(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
}
void CpuExecutor::download(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
}
size_t CpuExecutor::bytes_allocated() const {
    std::lock_guard<std::mutex> lk(mem_mu_);
    return allocated_;
}

void CpuExecutor::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    pool_->run(n, grain, fn);
}

void CpuExecutor::rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
    parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* xr = x + r * n;
            float* yr = y + r * n;
            const float ss = dot(xr, xr, n);
            const float scale = 1.f / std::sqrt(ss / float(n) + eps);
            if (w) {
                for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale * w[i];
            } else {
                for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale;
            }
        }
    });
}

void CpuExecutor::rope(float* x, int64_t row_stride, const int32_t* positions, int64_t n_tokens, int n_heads,
                       const RopeParams& p) {
    if (p.n_rot <= 0 || p.n_rot % 2 != 0 || p.n_rot > p.head_dim)
        throw Error("rope: n_rot " + std::to_string(p.n_rot) + " must be even and in (0, head_dim " +
                    std::to_string(p.head_dim) + "]");
    const int half = p.n_rot / 2;
    // Angles in double: theta_i = pos * freq_scale * base^(-2i/n_rot) / freq_factors[i].
    std::vector<double> inv_freq(half);
    for (int i = 0; i < half; ++i) {
        inv_freq[i] = double(p.freq_scale) * std::pow(double(p.base), -2.0 * i / double(p.n_rot));
        if (p.freq_factors) inv_freq[i] /= double(p.freq_factors[i]);
    }
    parallel_for(n_tokens, 1, [&](int64_t t0, int64_t t1) {
        float* cs = thread_buffer(size_t(2 * half), 0);
        float* sn = cs + half;
        for (int64_t t = t0; t < t1; ++t) {
            const double pos = double(positions[t]);
            for (int i = 0; i < half; ++i) {
                const double th = pos * inv_freq[i];
                cs[i] = float(std::cos(th));
                sn[i] = float(std::sin(th));
            }
            for (int h = 0; h < n_heads; ++h) {
                float* xh = x + t * row_stride + int64_t(h) * p.head_dim;
                for (int i = 0; i < half; ++i) {
                    const int i0 = p.neox ? i : 2 * i;
                    const int i1 = p.neox ? i + half : 2 * i + 1;
                    const float a = xh[i0], b = xh[i1];
                    xh[i0] = a * cs[i] - b * sn[i];
                    xh[i1] = b * cs[i] + a * sn[i];
                }
            }
        }
    });
}

void CpuExecutor::kv_store(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                           const int32_t* slot_mapping, int64_t n_tokens) {
    check_slots("kv_store", kv, slot_mapping, n_tokens);
    const int64_t width = int64_t(kv.n_kv_heads) * kv.head_dim;
    dispatch_kv(kv, [&](auto ke, auto ve) {
        using T = typename decltype(ke)::T;
        parallel_for(n_tokens, std::max<int64_t>(1, 8192 / std::max<int64_t>(width, 1)), [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t row = slot_mapping[t];
                if (row < 0) continue;
                T* kd = static_cast<T*>(kv.k) + row * width;
                T* vd = static_cast<T*>(kv.v) + row * width;
                for (int64_t i = 0; i < width; ++i) {
                    ke.store(kd + i, k[t * k_stride + i]);
                    ve.store(vd + i, v[t * v_stride + i]);
                }
            }
        });
    });
}

void CpuExecutor::attention(const float* q, int64_t q_stride, const KVCacheView& kv, float* out,
                            const AttentionParams& p, const StepBatch& b) {
    if (p.n_kv_head <= 0 || p.n_head % p.n_kv_head != 0 || p.n_kv_head != kv.n_kv_heads || p.head_dim != kv.head_dim)
        throw Error("attention: " + std::to_string(p.n_head) + " heads / " + std::to_string(p.n_kv_head) +
                    " KV heads of dim " + std::to_string(p.head_dim) + " do not fit the KV cache (" +
                    std::to_string(kv.n_kv_heads) + " heads of dim " + std::to_string(kv.head_dim) + ")");
    check_step("attention", kv, b);
    int64_t max_ctx = 0;
    for (int64_t t = 0; t < b.n_tokens; ++t) max_ctx = std::max<int64_t>(max_ctx, b.token_pos[t] + 1);
    const int hd = p.head_dim;
    const int group = p.n_head / p.n_kv_head;
    const int64_t kv_width = int64_t(p.n_kv_head) * hd;
    const int64_t out_stride = int64_t(p.n_head) * hd;
    dispatch_kv(kv, [&](auto ke, auto ve) {
        using T = typename decltype(ke)::T;
        const T* K = static_cast<const T*>(kv.k);
        const T* V = static_cast<const T*>(kv.v);
        // One work item per (token, head); later tokens attend to more positions, so items are handed out in
        // small chunks.
        parallel_for(b.n_tokens * p.n_head, 1, [&](int64_t i0, int64_t i1) {
            float* scores = thread_buffer(size_t(max_ctx), 0);
            float* acc = thread_buffer(size_t(hd), 1);
            float* row = thread_buffer(size_t(hd), 2);
            for (int64_t it = i0; it < i1; ++it) {
                const int64_t t = it / p.n_head;
                const int h = int(it % p.n_head);
                const int g = h / group;
                const float* qh = q + t * q_stride + int64_t(h) * hd;
                const int64_t n_ctx = int64_t(b.token_pos[t]) + 1;
                const int32_t seq = b.token_seq[t];
                float mx = -INFINITY;
                for (int64_t j = 0; j < n_ctx; ++j) {
                    const T* kj = K + kv_slot(kv, b, seq, j) * kv_width + int64_t(g) * hd;
                    float s;
                    if constexpr (std::is_same_v<decltype(ke), F32Elem>) {
                        s = dot(qh, kj, hd);
                    } else {
                        for (int d = 0; d < hd; ++d) row[d] = ke.load(kj + d);
                        s = dot(qh, row, hd);
                    }
                    s *= p.scale;
                    scores[j] = s;
                    mx = std::max(mx, s);
                }
                float sum = 0.f;
                for (int64_t j = 0; j < n_ctx; ++j) {
                    scores[j] = std::exp(scores[j] - mx);
                    sum += scores[j];
                }
                std::fill(acc, acc + hd, 0.f);
                for (int64_t j = 0; j < n_ctx; ++j) {
                    const T* vj = V + kv_slot(kv, b, seq, j) * kv_width + int64_t(g) * hd;
                    if constexpr (std::is_same_v<decltype(ve), F32Elem>) {
                        axpy(acc, scores[j], vj, hd);
                    } else {
                        for (int d = 0; d < hd; ++d) row[d] = ve.load(vj + d);
                        axpy(acc, scores[j], row, hd);
                    }
                }
                float* o = out + t * out_stride + int64_t(h) * hd;
                const float inv = 1.f / sum;
                for (int d = 0; d < hd; ++d) o[d] = acc[d] * inv;
            }
        });
    });
}

void CpuExecutor::swiglu(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride, float* out,
                         int64_t n_rows, int64_t n) {
    parallel_for(n_rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* g = gate + r * gate_stride;
            const float* u = up + r * up_stride;
            float* o = out + r * n;
            for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
        }
    });
}

void CpuExecutor::reserve_workspace(size_t bytes) {
    if (bytes <= workspace_bytes_) return;
    workspace_ = alloc(bytes, "matmul workspace");
    workspace_bytes_ = bytes;
}

void CpuExecutor::sample(const float* logits, int64_t logits_stride, int64_t n_rows, int64_t n_vocab,
                         const SampleRow* rows, const int32_t* recent, int32_t* out) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const SampleRow& row = rows[r];
        out[r] = sample_reference(logits + r * logits_stride, n_vocab, row.p, row.step,
                                  row.n_recent ? recent + row.recent_offset : nullptr, row.n_recent);
    }
}

void CpuExecutor::copy(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memmove(dst, src, bytes);
}

void CpuExecutor::fill_zero(void* dst, size_t bytes) {
    if (bytes) std::memset(dst, 0, bytes);
}

void CpuExecutor::rope_kv_store(float* q, int64_t q_stride, float* k, int64_t k_stride, const float* v,
                                int64_t v_stride, const float* q_norm, const float* k_norm, float norm_eps,
                                const StepBatch& b, int n_head, int n_kv_head, const RopeParams& rp,
                                const KVCacheView& kv) {
    if (n_kv_head != kv.n_kv_heads || rp.head_dim != kv.head_dim)
        throw Error("rope_kv_store: " + std::to_string(n_kv_head) + " KV heads of dim " +
                    std::to_string(rp.head_dim) + " do not fit the KV cache (" + std::to_string(kv.n_kv_heads) +
                    " heads of dim " + std::to_string(kv.head_dim) + ")");
    check_slots("rope_kv_store", kv, b.slot_mapping, b.n_tokens);
    const int64_t n_tokens = b.n_tokens;
    const int32_t* positions = b.token_pos;
    const int hd = rp.head_dim;
    // Per-head RMSNorm: one call over all heads when the rows are dense, else one call per token.
    auto norm_heads = [&](float* x, int64_t stride, int heads, const float* w) {
        if (!w) return;
        if (stride == int64_t(heads) * hd) {
            rms_norm(x, w, x, n_tokens * heads, hd, norm_eps);
        } else {
            for (int64_t t = 0; t < n_tokens; ++t) rms_norm(x + t * stride, w, x + t * stride, heads, hd, norm_eps);
        }
    };
    norm_heads(q, q_stride, n_head, q_norm);
    norm_heads(k, k_stride, n_kv_head, k_norm);
    rope(q, q_stride, positions, n_tokens, n_head, rp);
    rope(k, k_stride, positions, n_tokens, n_kv_head, rp);
    kv_store(kv, k, k_stride, v, v_stride, b.slot_mapping, n_tokens);
}

void CpuExecutor::add(float* x, const float* y, int64_t n) {
    parallel_for(n, 16384, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x[i] += y[i];
    });
}

}  // namespace imp
