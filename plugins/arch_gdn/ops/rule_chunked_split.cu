// gdn.rule_chunked on CUDA in two kernels (dk = dv = 128), for long prompts: the work that does not depend on the
// state runs for every chunk in parallel, and only what does runs sequentially along the sequence.
//   prep:  one block per (chunk, v-head, sequence): A, T = (I + A)^-1, w = T (beta k e), u = T (beta v) and
//          Aqk = tril(scale q k^T e_i/e_j), as in the fused kernel (rule_chunked.cu), written per row to the
//          workspace as bf16 records [-w | u | q e scale | k e_last/e | Aqk row] (576 values).
//   state: one block per (kBV value columns, v-head, sequence) keeps h in fp32 fragments and walks the chunks:
//          v_new = u - w h, o = (q e scale) h + Aqk v_new, h = e_last h + (k e_last/e)^T v_new; the next chunk's
//          records stream into shared memory (cp.async, double buffered) while this one is computed.
#include <cuda_bf16.h>

#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"
#include "rule_chunked_smem.cuh"

namespace imp::gdn::chunked {

namespace {

using namespace nvcuda;

constexpr int kRec = 4 * kD + kC;  // bf16 values per (row, v-head) record
constexpr int kOffWN = 0, kOffU = kD, kOffQD = 2 * kD, kOffKD = 3 * kD, kOffAqk = 4 * kD;
constexpr size_t kBf16Buf = size_t(kC) * kLdK * 2;  // one [kC][kD] bf16 buffer

struct PrepSmem {
    __nv_bfloat16 *Q, *K, *KBG, *VB, *Tb;
    float *A, *T, *stage, *X, *gc, *beta;
    static constexpr size_t bytes() {
        return 4 * kBf16Buf + size_t(kC) * kLdF * 4 + size_t(kC) * kLdC * 2 + kWarps * 256 * 4 + 3 * 256 * 4 + 2 * kC * 4;
    }
    __device__ explicit PrepSmem(unsigned char* p) {
        Q = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        T = reinterpret_cast<float*>(Q);  // q is dead once q k^T is formed ([kC][kLdF] fp32 = one bf16 buffer)
        K = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        KBG = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        VB = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        A = reinterpret_cast<float*>(p), p += size_t(kC) * kLdF * 4;
        Tb = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdC * 2;
        stage = reinterpret_cast<float*>(p), p += kWarps * 256 * 4;
        X = reinterpret_cast<float*>(p), p += 3 * 256 * 4;
        gc = reinterpret_cast<float*>(p), p += kC * 4;
        beta = reinterpret_cast<float*>(p);
    }
};
static_assert(size_t(kC) * kLdF * 4 == kBf16Buf, "T aliases Q");

__global__ void __launch_bounds__(kThreads, 2) prep_kernel(RuleArgs a, __nv_bfloat16* ws) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    PrepSmem sm(smem_raw);
    const Dims& d = a.dims;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, s = blockIdx.z, kh = d.k_head_of(h);
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    const int64_t c0 = int64_t(blockIdx.x) * kC;
    if (c0 >= len) return;
    const int n = int(len - c0 < kC ? len - c0 : kC);
    float* stage = sm.stage + warp * 256;
    auto rec = [&](int r) { return ws + ((r0 + c0 + r) * d.n_v_heads + h) * kRec; };
    chunk_gates(a, r0 + c0, n, h, sm.gc, sm.beta, tid, lane, warp);
    const float glast = sm.gc[n - 1];
    const float* qrow = a.qkv + (r0 + c0) * a.qkv_stride + int64_t(kh) * kD;
    const float* krow = qrow + d.key_dim();
    const float* vrow = a.qkv + (r0 + c0) * a.qkv_stride + 2 * d.key_dim() + int64_t(h) * kD;
    for (int idx = tid; idx < kC * kD; idx += kThreads) {
        const int i = idx / kD, e = idx % kD;
        float q = 0.f, k = 0.f, v = 0.f;
        if (i < n) {
            q = qrow[i * a.qkv_stride + e], k = krow[i * a.qkv_stride + e], v = vrow[i * a.qkv_stride + e];
            const float ei = __expf(sm.gc[i]);
            rec(i)[kOffQD + e] = __float2bfloat16(q * ei * a.scale);
            rec(i)[kOffKD + e] = __float2bfloat16(k * __expf(glast - sm.gc[i]));
        }
        sm.Q[i * kLdK + e] = __float2bfloat16(q);
        sm.K[i * kLdK + e] = __float2bfloat16(k);
        sm.KBG[i * kLdK + e] = __float2bfloat16(k * sm.beta[i] * __expf(sm.gc[i]));
        sm.VB[i * kLdK + e] = __float2bfloat16(v * sm.beta[i]);
    }
    __syncthreads();
    // A (strict lower, fp32, shared) and Aqk (lower, to the records); tiles above the diagonal are zero.
    for (int t = warp; t < 32; t += kWarps) {
        const bool qk = t >= 16;
        const int ti = (t & 15) >> 2, tj = t & 3;
        if (tj > ti) {
            for (int e = lane; e < 256; e += 32) {
                const int r = 16 * ti + (e >> 4), c = 16 * tj + (e & 15);
                if (!qk) sm.A[r * kLdF + c] = 0.f;
                else if (r < n) rec(r)[kOffAqk + c] = __float2bfloat16(0.f);
            }
            continue;
        }
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        const __nv_bfloat16* lhs = (qk ? sm.Q : sm.K) + 16 * ti * kLdK;
#pragma unroll
        for (int kk = 0; kk < kD / 16; ++kk) {
            FragA fa;
            FragBc fb;
            wmma::load_matrix_sync(fa, lhs + kk * 16, kLdK);
            wmma::load_matrix_sync(fb, sm.K + 16 * tj * kLdK + kk * 16, kLdK);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
            const int r = 16 * ti + rr, c = 16 * tj + cc;
            const float decay = __expf(sm.gc[r] - sm.gc[c]);
            if (!qk) sm.A[r * kLdF + c] = c < r ? sm.beta[r] * v * decay : 0.f;
            else if (r < n) rec(r)[kOffAqk + c] = __float2bfloat16(c <= r ? v * decay * a.scale : 0.f);
        });
    }
    __syncthreads();
    solve_unit_lower(sm, tid, lane, warp);
    // -w = -T (beta k e) and u = T (beta v), 32 tiles each, to the records.
    for (int t = warp; t < 64; t += kWarps) {
        const bool is_u = t >= 32;
        const int ti = (t & 31) / (kD / 16), tj = (t & 31) % (kD / 16);
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        for (int kk = 0; kk <= ti; ++kk) {
            FragA fa;
            FragB fb;
            wmma::load_matrix_sync(fa, sm.Tb + 16 * ti * kLdC + kk * 16, kLdC);
            wmma::load_matrix_sync(fb, (is_u ? sm.VB : sm.KBG) + 16 * kk * kLdK + 16 * tj, kLdK);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
            const int r = 16 * ti + rr;
            if (r < n) rec(r)[(is_u ? kOffU : kOffWN) + 16 * tj + cc] = __float2bfloat16(is_u ? v : -v);
        });
    }
}

template <int kBV>
struct StateSmem {
    static constexpr int kLdV = kBV + 8;
    struct Buf {
        __nv_bfloat16 *WN, *QD, *KD, *Aqk, *U;
    };
    unsigned char* bufs;  // two Bufs of kBufBytes (double buffering)
    __nv_bfloat16 *H, *VN;
    float *stage, *el;
    static constexpr size_t kBufBytes = 3 * kBf16Buf + size_t(kC) * kLdC * 2 + size_t(kC) * kLdV * 2;
    static constexpr size_t bytes() {
        return 2 * kBufBytes + size_t(kD) * kLdV * 2 + size_t(kC) * kLdV * 2 + kWarps * 256 * 4 + 2 * 4;
    }
    // Buffer i (0 or 1), computed rather than indexed (an indexed array of pointers would live in local memory).
    __device__ Buf buf(int i) const {
        unsigned char* p = bufs + i * kBufBytes;
        Buf b;
        b.WN = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        b.QD = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        b.KD = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        b.Aqk = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdC * 2;
        b.U = reinterpret_cast<__nv_bfloat16*>(p);
        return b;
    }
    __device__ explicit StateSmem(unsigned char* p) {
        bufs = p, p += 2 * kBufBytes;
        H = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kD) * kLdV * 2;
        VN = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdV * 2;
        stage = reinterpret_cast<float*>(p), p += kWarps * 256 * 4;
        el = reinterpret_cast<float*>(p);
    }
};

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_1() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

// Queues the copy of the records of rows [row0, row0 + n) (v-head h, value block vb) into b; rows past n are zeros.
template <int kBV>
__device__ __forceinline__ void prefetch(const typename StateSmem<kBV>::Buf& b, const __nv_bfloat16* ws,
                                         int64_t row0, int n, int hv, int h, int vb, int tid) {
    constexpr int kLdV = StateSmem<kBV>::kLdV;
    constexpr int kPieces = 16 + kBV / 8 + 16 + 16 + 8;  // 16-byte pieces per row: -w, u block, qd, kd, aqk
    for (int idx = tid; idx < kC * kPieces; idx += kThreads) {
        const int r = idx / kPieces, p = idx % kPieces;
        const bool valid = r < n;
        const __nv_bfloat16* rec = ws + ((row0 + (valid ? r : 0)) * hv + h) * kRec;
        __nv_bfloat16* dst;
        const __nv_bfloat16* src;
        if (p < 16) dst = b.WN + r * kLdK + 8 * p, src = rec + kOffWN + 8 * p;
        else if (p < 16 + kBV / 8) dst = b.U + r * kLdV + 8 * (p - 16), src = rec + kOffU + vb * kBV + 8 * (p - 16);
        else if (p < 32 + kBV / 8) dst = b.QD + r * kLdK + 8 * (p - 16 - kBV / 8), src = rec + kOffQD + 8 * (p - 16 - kBV / 8);
        else if (p < 48 + kBV / 8) dst = b.KD + r * kLdK + 8 * (p - 32 - kBV / 8), src = rec + kOffKD + 8 * (p - 32 - kBV / 8);
        else dst = b.Aqk + r * kLdC + 8 * (p - 48 - kBV / 8), src = rec + kOffAqk + 8 * (p - 48 - kBV / 8);
        cp_async16(dst, src, valid);
    }
}

template <int kBV>
__global__ void __launch_bounds__(kThreads, 1) state_kernel(RuleArgs a, const __nv_bfloat16* ws) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    StateSmem<kBV> sm(smem_raw);
    constexpr int kLdV = StateSmem<kBV>::kLdV;
    constexpr int kVT = 4 * (kBV / 16);  // v_new / o tiles
    constexpr int kPer = (kVT + kWarps - 1) / kWarps;
    const Dims& d = a.dims;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int vb = blockIdx.x, h = blockIdx.y, s = blockIdx.z;
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    float* stage = sm.stage + warp * 256;
    // h: warp w holds key rows [16w, 16w + 16) x kBV columns; global [dv, dk] is column-major [dk, dv].
    float* S = a.state + int64_t(a.seqs.state_slots[s]) * a.state_stride + (int64_t(h) * kD + vb * kBV) * kD;
    constexpr int kHT = kBV / 16;
    FragC hacc[kHT];
#pragma unroll
    for (int c = 0; c < kHT; ++c) wmma::load_matrix_sync(hacc[c], S + c * 16 * kD + 16 * warp, kD, wmma::mem_col_major);
#pragma unroll
    for (int c = 0; c < kHT; ++c)
        epilogue(hacc[c], stage, lane, [&](int rr, int cc, float v) {
            sm.H[(16 * warp + rr) * kLdV + 16 * c + cc] = __float2bfloat16(v);
        });
    float* orow = a.o + r0 * a.o_stride + int64_t(h) * kD + vb * kBV;
    const int n_chunks = int((len + kC - 1) / kC);
    if (n_chunks > 0) prefetch<kBV>(sm.buf(0), ws, r0, int(len < kC ? len : kC), d.n_v_heads, h, vb, tid);
    cp_async_commit();
    for (int ci = 0; ci < n_chunks; ++ci) {
        const int64_t c0 = int64_t(ci) * kC;
        const int n = int(len - c0 < kC ? len - c0 : kC);
        const auto b = sm.buf(ci & 1);
        if (ci + 1 < n_chunks) {
            const int64_t c1 = c0 + kC;
            prefetch<kBV>(sm.buf((ci + 1) & 1), ws, r0 + c1, int(len - c1 < kC ? len - c1 : kC), d.n_v_heads, h, vb, tid);
        }
        cp_async_commit();
        if (warp == 0) {  // e_last = exp(sum of the chunk's g)
            float g = 0.f;
            for (int i = lane; i < n; i += 32) g += a.g[(r0 + c0 + i) * d.n_v_heads + h];
            g = imp::cuda::warp_sum(g);
            if (lane == 0) sm.el[ci & 1] = __expf(g);
        }
        cp_async_wait_1();
        __syncthreads();
        // v_new = u - w h
#pragma unroll
        for (int p = 0; p < kPer; ++p) {
            const int t = warp + p * kWarps;
            if (t >= kVT) continue;
            const int ti = t / (kBV / 16), tj = t % (kBV / 16);
            FragC acc;
            wmma::fill_fragment(acc, 0.f);
#pragma unroll
            for (int kk = 0; kk < kD / 16; ++kk) {
                FragA fa;
                FragB fb;
                wmma::load_matrix_sync(fa, b.WN + 16 * ti * kLdK + kk * 16, kLdK);
                wmma::load_matrix_sync(fb, sm.H + 16 * kk * kLdV + 16 * tj, kLdV);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
                const int r = 16 * ti + rr, c = 16 * tj + cc;
                sm.VN[r * kLdV + c] = __float2bfloat16(v + __bfloat162float(b.U[r * kLdV + c]));
            });
        }
        __syncthreads();
        // o = (q e scale) h + Aqk v_new, rows < n
#pragma unroll
        for (int p = 0; p < kPer; ++p) {
            const int t = warp + p * kWarps;
            if (t >= kVT) continue;
            const int ti = t / (kBV / 16), tj = t % (kBV / 16);
            FragC acc;
            wmma::fill_fragment(acc, 0.f);
#pragma unroll
            for (int kk = 0; kk < kD / 16; ++kk) {
                FragA fa;
                FragB fb;
                wmma::load_matrix_sync(fa, b.QD + 16 * ti * kLdK + kk * 16, kLdK);
                wmma::load_matrix_sync(fb, sm.H + 16 * kk * kLdV + 16 * tj, kLdV);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            for (int kk = 0; kk <= ti; ++kk) {
                FragA fa;
                FragB fb;
                wmma::load_matrix_sync(fa, b.Aqk + 16 * ti * kLdC + kk * 16, kLdC);
                wmma::load_matrix_sync(fb, sm.VN + 16 * kk * kLdV + 16 * tj, kLdV);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
                const int r = 16 * ti + rr;
                if (r < n) orow[(c0 + r) * a.o_stride + 16 * tj + cc] = v;
            });
        }
        // h = e_last h + (k e_last / e)^T v_new
        const float el = sm.el[ci & 1];
#pragma unroll
        for (int c = 0; c < kHT; ++c) {
#pragma unroll
            for (int e = 0; e < hacc[c].num_elements; ++e) hacc[c].x[e] *= el;
#pragma unroll
            for (int kk = 0; kk < kC / 16; ++kk) {
                FragAc fa;
                FragB fb;
                wmma::load_matrix_sync(fa, b.KD + 16 * kk * kLdK + 16 * warp, kLdK);
                wmma::load_matrix_sync(fb, sm.VN + 16 * kk * kLdV + 16 * c, kLdV);
                wmma::mma_sync(hacc[c], fa, fb, hacc[c]);
            }
        }
        __syncthreads();  // every warp is done reading sm.H and this chunk's buffer
#pragma unroll
        for (int c = 0; c < kHT; ++c)
            epilogue(hacc[c], stage, lane, [&](int rr, int cc, float v) {
                sm.H[(16 * warp + rr) * kLdV + 16 * c + cc] = __float2bfloat16(v);
            });
        __syncthreads();
    }
#pragma unroll
    for (int c = 0; c < kHT; ++c) wmma::store_matrix_sync(S + c * 16 * kD + 16 * warp, hacc[c], kD, wmma::mem_col_major);
}

template <class K>
void raise_smem(K kernel, size_t bytes, int device, bool* done) {
    if (device >= 0 && device < 64 && done[device]) return;
    IMP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    if (device >= 0 && device < 64) done[device] = true;
}

template <int kBV>
void launch_state(const RuleArgs& a, const CudaHandles& h, const __nv_bfloat16* ws) {
    static bool done[64] = {};
    constexpr size_t smem = StateSmem<kBV>::bytes();
    raise_smem(state_kernel<kBV>, smem, h.device, done);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.grid = dim3(unsigned(kD / kBV), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
    c.block = dim3(kThreads);
    c.smem = smem;
    IMP_CUDA_CHECK(imp::cuda::launch(c, state_kernel<kBV>, a, ws));
}

}  // namespace

void rule_chunked_split(const RuleArgs& a, const CudaHandles& h, int bv) {
    auto* ws = static_cast<__nv_bfloat16*>(a.workspace);
    static bool done[64] = {};
    raise_smem(prep_kernel, PrepSmem::bytes(), h.device, done);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    // Chunks of the longest sequence (StepBatch::max_query_len bounds every sequence's rows; n_tokens when unset).
    const int64_t max_len = a.seqs.max_query_len > 0 ? a.seqs.max_query_len : a.seqs.n_tokens;
    c.grid = dim3(unsigned((max_len + kC - 1) / kC), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
    c.block = dim3(kThreads);
    c.smem = PrepSmem::bytes();
    IMP_CUDA_CHECK(imp::cuda::launch(c, prep_kernel, a, ws));
    if (bv == 32) launch_state<32>(a, h, ws);
    else launch_state<64>(a, h, ws);
}

}  // namespace imp::gdn::chunked
