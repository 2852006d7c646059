// CUDA kernel of gdn.rule_chunked (gdn_ops.h) for dk = dv = 128: one block of 8 warps per (value block of kBV
// columns, v-head, sequence) walks the sequence in chunks of 64 rows in the WY/UT form (gdn_rule_cpu.cpp has the
// same steps in plain loops). Products run on the tensor cores (WMMA bf16 16x16x16, fp32 accumulation); the state
// h [dk, kBV] stays in fp32 accumulator fragments for the whole sequence (warp w owns key rows 16w..16w+15), with a
// bf16 copy in shared memory as the operand of the products. Per chunk (gc = cumsum g, e_i = exp(gc_i)):
//   A = strict_lower(beta_i k_i.k_j e_i/e_j), T = (I + A)^-1 (16x16 diagonal blocks by substitution, then blocks)
//   w = T (beta k e), v_new = T (beta v) - w h, o = scale (q e) h + tril(scale q_i.k_j e_i/e_j) v_new,
//   h = e_last h + (k e_last/e)^T v_new.
#include <mma.h>
#include <cuda_bf16.h>

#include "gdn_kernels.h"
#include "imp/cuda/check.h"
#include "imp/cuda/launch.cuh"
#include "rule_chunked_smem.cuh"

namespace imp::gdn {

namespace {

using namespace nvcuda;
using namespace imp::gdn::chunked;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragAc = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragBc = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Stores accumulator tile acc through the warp's staging tile and calls f(row, col, value) for its 256 elements.
template <class F>
__device__ __forceinline__ void epilogue(const FragC& acc, float* stage, int lane, F&& f) {
    wmma::store_matrix_sync(stage, acc, 16, wmma::mem_row_major);
    __syncwarp();
#pragma unroll
    for (int e = 0; e < 8; ++e) {
        const int idx = lane + 32 * e;
        f(idx >> 4, idx & 15, stage[idx]);
    }
    __syncwarp();
}

template <int kBV>
__global__ void __launch_bounds__(kThreads, 1) chunked_kernel(RuleArgs a) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    Smem<kBV> sm(smem_raw);
    const Dims& d = a.dims;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int vb = blockIdx.x, h = blockIdx.y, s = blockIdx.z, kh = d.k_head_of(h);
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    constexpr int kLdV = Smem<kBV>::kLdV;
    float* stage = sm.stage + warp * 256;
    // h: warp w holds key rows [16w, 16w + 16) x kBV columns; global [dv, dk] is column-major [dk, dv].
    float* S = a.state + int64_t(a.seqs.state_slots[s]) * a.state_stride + (int64_t(h) * kD + vb * kBV) * kD;
    FragC hacc[kBV / 16];
#pragma unroll
    for (int c = 0; c < kBV / 16; ++c) wmma::load_matrix_sync(hacc[c], S + c * 16 * kD + 16 * warp, kD, wmma::mem_col_major);
    for (int i = tid; i < kC * kLdF; i += kThreads) sm.T[i] = 0.f;  // upper blocks of T stay zero
#pragma unroll
    for (int c = 0; c < kBV / 16; ++c)
        epilogue(hacc[c], stage, lane, [&](int rr, int cc, float v) {
            sm.H[(16 * warp + rr) * kLdV + 16 * c + cc] = __float2bfloat16(v);
        });
    const float* qrow = a.qkv + r0 * a.qkv_stride + int64_t(kh) * kD;
    const float* krow = qrow + d.key_dim();
    const float* vrow = a.qkv + r0 * a.qkv_stride + 2 * d.key_dim() + int64_t(h) * kD + vb * kBV;
    float* orow = a.o + r0 * a.o_stride + int64_t(h) * kD + vb * kBV;

    for (int64_t c0 = 0; c0 < len; c0 += kC) {
        const int n = int(len - c0 < kC ? len - c0 : kC);
        // ---- gates and cumulative decay
        if (tid < kC) {
            const int64_t t = r0 + c0 + tid;
            sm.gc[tid] = tid < n ? a.g[t * d.n_v_heads + h] : 0.f;
            sm.beta[tid] = tid < n ? a.beta[t * d.n_v_heads + h] : 0.f;
        }
        __syncthreads();
        if (warp == 0) {
            float g0 = sm.gc[2 * lane], g1 = g0 + sm.gc[2 * lane + 1], x = g1;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const float y = __shfl_up_sync(0xffffffffu, x, o);
                if (lane >= o) x += y;
            }
            const float before = x - g1;
            sm.gc[2 * lane] = before + g0;
            sm.gc[2 * lane + 1] = x;
        }
        __syncthreads();
        const float glast = sm.gc[n - 1];
        // ---- rows to bf16: q, q e scale, k, k beta e, k e_last/e, v beta
        for (int idx = tid; idx < kC * kD; idx += kThreads) {
            const int i = idx / kD, e = idx % kD;
            float q = 0.f, k = 0.f;
            if (i < n) q = qrow[(c0 + i) * a.qkv_stride + e], k = krow[(c0 + i) * a.qkv_stride + e];
            const float ei = __expf(sm.gc[i]);
            sm.Q[i * kLdK + e] = __float2bfloat16(q);
            sm.QD[i * kLdK + e] = __float2bfloat16(q * ei * a.scale);
            sm.K[i * kLdK + e] = __float2bfloat16(k);
            sm.KBG[i * kLdK + e] = __float2bfloat16(k * sm.beta[i] * ei);
            sm.KD[i * kLdK + e] = __float2bfloat16(k * __expf(glast - sm.gc[i]));
        }
        for (int idx = tid; idx < kC * kBV; idx += kThreads) {
            const int i = idx / kBV, e = idx % kBV;
            const float v = i < n ? vrow[(c0 + i) * a.qkv_stride + e] : 0.f;
            sm.VB[i * kLdV + e] = __float2bfloat16(v * sm.beta[i]);
        }
        __syncthreads();
        // ---- A = beta k k^T decayed (strict lower, fp32) and Aqk = scale q k^T decayed (lower, bf16)
        for (int t = warp; t < 32; t += kWarps) {
            const bool qk = t >= 16;
            const int ti = (t & 15) >> 2, tj = t & 3;
            if (tj > ti) {
                for (int e = lane; e < 256; e += 32) {
                    const int r = 16 * ti + (e >> 4), c = 16 * tj + (e & 15);
                    if (qk) sm.Aqk[r * kLdC + c] = __float2bfloat16(0.f);
                    else sm.A[r * kLdF + c] = 0.f;
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
                if (qk) sm.Aqk[r * kLdC + c] = __float2bfloat16(c <= r ? v * decay * a.scale : 0.f);
                else sm.A[r * kLdF + c] = c < r ? sm.beta[r] * v * decay : 0.f;
            });
        }
        __syncthreads();
        solve_unit_lower(sm, tid, lane, warp);  // T = (I + A)^-1 into sm.T (fp32) and sm.Tb (bf16)
        // ---- w = T (beta k e) -> -w (bf16); u = T (beta v) kept in fragments
        for (int t = warp; t < 4 * (kD / 16); t += kWarps) {
            const int ti = t / (kD / 16), tj = t % (kD / 16);
            FragC acc;
            wmma::fill_fragment(acc, 0.f);
            for (int kk = 0; kk <= ti; ++kk) {
                FragA fa;
                FragB fb;
                wmma::load_matrix_sync(fa, sm.Tb + 16 * ti * kLdC + kk * 16, kLdC);
                wmma::load_matrix_sync(fb, sm.KBG + 16 * kk * kLdK + 16 * tj, kLdK);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
                sm.WN[(16 * ti + rr) * kLdK + 16 * tj + cc] = __float2bfloat16(-v);
            });
        }
        constexpr int kVT = 4 * (kBV / 16);  // v_new / o tiles
        constexpr int kPer = (kVT + kWarps - 1) / kWarps;
        FragC u[kPer];
#pragma unroll
        for (int p = 0; p < kPer; ++p) {
            const int t = warp + p * kWarps;
            wmma::fill_fragment(u[p], 0.f);
            if (t >= kVT) continue;
            const int ti = t / (kBV / 16), tj = t % (kBV / 16);
            for (int kk = 0; kk <= ti; ++kk) {
                FragA fa;
                FragB fb;
                wmma::load_matrix_sync(fa, sm.Tb + 16 * ti * kLdC + kk * 16, kLdC);
                wmma::load_matrix_sync(fb, sm.VB + 16 * kk * kLdV + 16 * tj, kLdV);
                wmma::mma_sync(u[p], fa, fb, u[p]);
            }
        }
        __syncthreads();
        // ---- v_new = u - w h (bf16)
#pragma unroll
        for (int p = 0; p < kPer; ++p) {
            const int t = warp + p * kWarps;
            if (t >= kVT) continue;
            const int ti = t / (kBV / 16), tj = t % (kBV / 16);
#pragma unroll
            for (int kk = 0; kk < kD / 16; ++kk) {
                FragA fa;
                FragB fb;
                wmma::load_matrix_sync(fa, sm.WN + 16 * ti * kLdK + kk * 16, kLdK);
                wmma::load_matrix_sync(fb, sm.H + 16 * kk * kLdV + 16 * tj, kLdV);
                wmma::mma_sync(u[p], fa, fb, u[p]);
            }
            epilogue(u[p], stage, lane, [&](int rr, int cc, float v) {
                sm.VN[(16 * ti + rr) * kLdV + 16 * tj + cc] = __float2bfloat16(v);
            });
        }
        __syncthreads();
        // ---- o = (q e scale) h + Aqk v_new, rows < n to global
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
                wmma::load_matrix_sync(fa, sm.QD + 16 * ti * kLdK + kk * 16, kLdK);
                wmma::load_matrix_sync(fb, sm.H + 16 * kk * kLdV + 16 * tj, kLdV);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            for (int kk = 0; kk <= ti; ++kk) {
                FragA fa;
                FragB fb;
                wmma::load_matrix_sync(fa, sm.Aqk + 16 * ti * kLdC + kk * 16, kLdC);
                wmma::load_matrix_sync(fb, sm.VN + 16 * kk * kLdV + 16 * tj, kLdV);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
                const int r = 16 * ti + rr;
                if (r < n) orow[(c0 + r) * a.o_stride + 16 * tj + cc] = v;
            });
        }
        // ---- h = e_last h + (k e_last / e)^T v_new
        const float el = __expf(glast);
#pragma unroll
        for (int c = 0; c < kBV / 16; ++c) {
#pragma unroll
            for (int e = 0; e < hacc[c].num_elements; ++e) hacc[c].x[e] *= el;
#pragma unroll
            for (int kk = 0; kk < kC / 16; ++kk) {
                FragAc fa;
                FragB fb;
                wmma::load_matrix_sync(fa, sm.KD + 16 * kk * kLdK + 16 * warp, kLdK);
                wmma::load_matrix_sync(fb, sm.VN + 16 * kk * kLdV + 16 * c, kLdV);
                wmma::mma_sync(hacc[c], fa, fb, hacc[c]);
            }
        }
        __syncthreads();  // every warp is done reading sm.H (the old state)
#pragma unroll
        for (int c = 0; c < kBV / 16; ++c)
            epilogue(hacc[c], stage, lane, [&](int rr, int cc, float v) {
                sm.H[(16 * warp + rr) * kLdV + 16 * c + cc] = __float2bfloat16(v);
            });
        __syncthreads();
    }
#pragma unroll
    for (int c = 0; c < kBV / 16; ++c) wmma::store_matrix_sync(S + c * 16 * kD + 16 * warp, hacc[c], kD, wmma::mem_col_major);
}

}  // namespace

void rule_chunked_cuda(Executor& ex, const RuleArgs& a) {
    validate(RuleChunked::name, a);
    const CudaHandles* h = ex.cuda();
    const std::string op = RuleChunked::name;
    if (!h) throw Error(op + ": executor '" + ex.name() + "' is not a CUDA executor");
    if (a.dims.head_k_dim != kD || a.dims.head_v_dim != kD)
        throw Error(op + ": the CUDA kernel takes head_k_dim = head_v_dim = 128, got " +
                    std::to_string(a.dims.head_k_dim) + " and " + std::to_string(a.dims.head_v_dim));
    if ((reinterpret_cast<uintptr_t>(a.state) & 31u) != 0 || a.state_stride % 8 != 0)
        throw Error(op + ": the state and its slot stride must be 32-byte aligned (stride " +
                    std::to_string(a.state_stride) + " floats)");
    if (a.seqs.n_tokens == 0) return;
    if (a.seqs.n_seqs > 65535) throw Error(op + ": " + std::to_string(a.seqs.n_seqs) + " sequences in one step");
    constexpr int kBV = 64;
    const size_t smem = Smem<kBV>::bytes();
    static bool configured[64] = {};  // per device: the kernel's dynamic shared memory limit raised once
    if (h->device < 0 || h->device >= 64 || !configured[h->device]) {
        IMP_CUDA_CHECK(cudaFuncSetAttribute(chunked_kernel<kBV>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        if (h->device >= 0 && h->device < 64) configured[h->device] = true;
    }
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(*h);
    c.grid = dim3(unsigned(kD / kBV), unsigned(a.dims.n_v_heads), unsigned(a.seqs.n_seqs));
    c.block = dim3(kThreads);
    c.smem = smem;
    IMP_CUDA_CHECK(imp::cuda::launch(c, chunked_kernel<kBV>, a));
}

}  // namespace imp::gdn
