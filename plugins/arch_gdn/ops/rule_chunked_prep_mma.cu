// The prep kernel of gdn.rule_chunked's split path on mma.sync (variants 4, 5, 6 of RuleArgs::variant): the same
// workspace records as chunk_prep + RecSink (rule_chunked_records.cuh) from one block of 8 warps per (chunk, v-head,
// sequence), with the products on m16n8k16 tiles whose fragments the warps hold in registers:
//   load:  q, k, v rows (fp32, 16-byte loads when aligned, 12 per thread in flight at once) -> bf16 q, k, beta k e,
//          beta v in shared memory; the records' q e scale and k e_last/e written at once (8-byte stores, coalesced);
//   S = k k^T, P = q k^T (warp: 16 rows x 32 columns, lower tiles only) -> A = strict_lower(beta S decay) (fp32) and
//          Aqk = tril(scale P decay), decay = exp(gc_i - gc_j);
//   T = (I + A)^-1 (solve_unit_lower, rule_chunked_common.cuh);
//   -w = -T (beta k e), u = T (beta v) (warp: two row tiles of 64 columns of one of them, balanced k-steps);
//   -w, u and Aqk staged in shared memory, then written as 16-byte pieces per record row.
#include <cuda_bf16.h>

#include "gdn_kernels.h"
#include "imp/cuda/launch.cuh"
#include "mma_sm80.cuh"
#include "rule_chunked_records.cuh"

namespace imp::gdn::chunked {

namespace {

using namespace imp::gdn::mma;

// Shared memory: Q and K (bf16 [kC][kLdK]) are dead once S and P are in registers: A (fp32 [kC][kLdF], the same
// bytes) takes Q's place and T K's; once T is in Tb they hold the staged -w and u.
struct PrepMmaSmem {
    __nv_bfloat16 *Q, *K, *KBG, *VB, *Tb, *Aqk, *Wst, *Ust;
    float *A, *T, *X, *gc, *beta;
    static constexpr size_t bytes() { return 4 * kBf16Buf + 2 * size_t(kC) * kLdC * 2 + 3 * 256 * 4 + 2 * kC * 4; }
    __device__ explicit PrepMmaSmem(unsigned char* p) {
        Q = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        K = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        KBG = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        VB = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        Tb = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdC * 2;
        Aqk = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdC * 2;
        X = reinterpret_cast<float*>(p), p += 3 * 256 * 4;
        gc = reinterpret_cast<float*>(p), p += kC * 4;
        beta = reinterpret_cast<float*>(p);
        A = reinterpret_cast<float*>(Q), T = reinterpret_cast<float*>(K);
        Wst = Q, Ust = K;
    }
};
static_assert(size_t(kC) * kLdF * 4 == kBf16Buf, "A and T alias the bf16 buffers");

__device__ __forceinline__ float4 load4(const float* p, bool vec) {
    return vec ? *reinterpret_cast<const float4*>(p) : make_float4(p[0], p[1], p[2], p[3]);
}

__global__ void __launch_bounds__(kThreads, 2) prep_mma_kernel(RuleArgs a, __nv_bfloat16* ws) {
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    PrepMmaSmem sm(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int h = blockIdx.y, s = blockIdx.z, hv = a.dims.n_v_heads, kh = a.dims.k_head_of(h);
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    const int64_t c0 = int64_t(blockIdx.x) * kC;
    if (c0 >= len) return;
    const int n = int(len - c0 < kC ? len - c0 : kC);
    const int64_t row0 = r0 + c0;
    // Loads: thread tid covers rows tid / 32 + 8 j (j < 8), columns 4 (tid % 32) .. + 3 of q, k and v, in two parts
    // of 4 rows whose 12 loads are all in flight at once; the first part's loads overlap the gates' scan.
    const float* qrow = a.qkv + row0 * a.qkv_stride + int64_t(kh) * kD;
    const float* krow = qrow + a.dims.key_dim();
    const float* vrow = a.qkv + row0 * a.qkv_stride + 2 * a.dims.key_dim() + int64_t(h) * kD;
    const bool vec = ((reinterpret_cast<uintptr_t>(a.qkv) | uintptr_t(a.qkv_stride) * 4) & 15) == 0;
    constexpr int kPart = 4;
    static_assert(2 * kPart * kThreads * 4 == kC * kD, "two parts of 4 rows per thread cover the chunk");
    const int col = 4 * (tid & 31);
    float4 q[kPart], k[kPart], v[kPart];
    auto load_part = [&](int part) {
#pragma unroll
        for (int u = 0; u < kPart; ++u) {
            const int i = (tid >> 5) + 8 * (kPart * part + u);
            q[u] = k[u] = v[u] = make_float4(0.f, 0.f, 0.f, 0.f);
            if (i < n) {
                q[u] = load4(qrow + i * a.qkv_stride + col, vec);
                k[u] = load4(krow + i * a.qkv_stride + col, vec);
                v[u] = load4(vrow + i * a.qkv_stride + col, vec);
            }
        }
    };
    load_part(0);
    chunk_gates(a, row0, n, h, sm.gc, sm.beta, tid, lane, warp);
    const float glast = sm.gc[n - 1];
    auto store_part = [&](int part) {
#pragma unroll
        for (int u = 0; u < kPart; ++u) {
            const int i = (tid >> 5) + 8 * (kPart * part + u);
            const float b = sm.beta[i], ei = __expf(sm.gc[i]), kb = b * ei;
            const float4 qq = q[u], kk = k[u], vv = v[u];
            store_bf16x4(sm.Q + i * kLdK + col, qq.x, qq.y, qq.z, qq.w);
            store_bf16x4(sm.K + i * kLdK + col, kk.x, kk.y, kk.z, kk.w);
            store_bf16x4(sm.KBG + i * kLdK + col, kk.x * kb, kk.y * kb, kk.z * kb, kk.w * kb);
            store_bf16x4(sm.VB + i * kLdK + col, vv.x * b, vv.y * b, vv.z * b, vv.w * b);
            if (i < n) {
                __nv_bfloat16* rec = ws + ((row0 + i) * hv + h) * kRec;
                const float qs = ei * a.scale, kd = __expf(glast - sm.gc[i]);
                store_bf16x4(rec + kOffQD + col, qq.x * qs, qq.y * qs, qq.z * qs, qq.w * qs);
                store_bf16x4(rec + kOffKD + col, kk.x * kd, kk.y * kd, kk.z * kd, kk.w * kd);
            }
        }
    };
    store_part(0);
    load_part(1);
    store_part(1);
    __syncthreads();

    // S = k k^T and P = q k^T: warp -> rows 16 ti .. + 15, columns 32 ch .. + 31 (tiles wholly above the diagonal
    // stay zero).
    {
        const int ti = warp & 3, ch = warp >> 2;
        float accS[4][4], accP[4][4];
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) zero(accS[nb]), zero(accP[nb]);
        if (32 * ch <= 16 * ti + 15) {
#pragma unroll
            for (int ks = 0; ks < kD / 16; ++ks) {
                uint32_t ak[4], aq[4];
                ldsm_x4(ak, sm.K + 16 * ti * kLdK + 16 * ks + a_off(lane, kLdK));
                ldsm_x4(aq, sm.Q + 16 * ti * kLdK + 16 * ks + a_off(lane, kLdK));
#pragma unroll
                for (int np = 0; np < 2; ++np) {
                    uint32_t bk[4];
                    ldsm_x4(bk, sm.K + (32 * ch + 16 * np) * kLdK + 16 * ks + bt_off(lane, kLdK));
                    mma_bf16(accS[2 * np], ak, bk[0], bk[1]);
                    mma_bf16(accS[2 * np + 1], ak, bk[2], bk[3]);
                    mma_bf16(accP[2 * np], aq, bk[0], bk[1]);
                    mma_bf16(accP[2 * np + 1], aq, bk[2], bk[3]);
                }
            }
        }
        __syncthreads();  // Q and K are read: A and T take their place
#pragma unroll
        for (int nb = 0; nb < 4; ++nb)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = 16 * ti + g + 8 * (e >> 1), c = 32 * ch + 8 * nb + 2 * t4 + (e & 1);
                const float decay = c <= r ? __expf(sm.gc[r] - sm.gc[c]) : 0.f;
                sm.A[r * kLdF + c] = c < r ? sm.beta[r] * accS[nb][e] * decay : 0.f;
                sm.Aqk[r * kLdC + c] = __float2bfloat16(a.scale * accP[nb][e] * decay);
            }
    }
    __syncthreads();
    solve_unit_lower(sm, tid, lane, warp);  // T = (I + A)^-1 into Tb (bf16, zero above the diagonal blocks)

    // -w = -T (beta k e) and u = T (beta v): warp -> row tiles {0, 3} or {1, 2} (T is block lower: ti + 1 k-steps,
    // 5 per warp either way), columns 64 half .. + 63 of -w (which 0) or u (which 1).
    {
        const int pair = warp & 1, which = (warp >> 1) & 1, half = warp >> 2;
        const __nv_bfloat16* B = which ? sm.VB : sm.KBG;
        __nv_bfloat16* dst = which ? sm.Ust : sm.Wst;
        const float sign = which ? 1.f : -1.f;
#pragma unroll
        for (int tt = 0; tt < 2; ++tt) {
            const int ti = tt == 0 ? pair : 3 - pair;
            float acc[8][4];
#pragma unroll
            for (int nb = 0; nb < 8; ++nb) zero(acc[nb]);
            for (int ks = 0; ks <= ti; ++ks) {
                uint32_t at[4];
                ldsm_x4(at, sm.Tb + 16 * ti * kLdC + 16 * ks + a_off(lane, kLdC));
#pragma unroll
                for (int np = 0; np < 4; ++np) {
                    uint32_t bb[4];
                    ldsm_x4_trans(bb, B + 16 * ks * kLdK + 64 * half + 16 * np + a_off(lane, kLdK));
                    mma_bf16(acc[2 * np], at, bb[0], bb[1]);
                    mma_bf16(acc[2 * np + 1], at, bb[2], bb[3]);
                }
            }
#pragma unroll
            for (int nb = 0; nb < 8; ++nb) {
                const int r = 16 * ti + g, c = 64 * half + 8 * nb + 2 * t4;
                store_bf16x2(dst + r * kLdK + c, sign * acc[nb][0], sign * acc[nb][1]);
                store_bf16x2(dst + (r + 8) * kLdK + c, sign * acc[nb][2], sign * acc[nb][3]);
            }
        }
    }
    __syncthreads();

    // Records of rows < n (the others belong to other rows of the step): 16 pieces of -w, 16 of u, 8 of Aqk per row.
    constexpr int kPieces = 40;
    for (int idx = tid; idx < kC * kPieces; idx += kThreads) {
        const int r = idx / kPieces, p = idx % kPieces;
        if (r >= n) break;  // idx grows with r
        __nv_bfloat16* rec = ws + ((row0 + r) * hv + h) * kRec;
        const __nv_bfloat16* src;
        __nv_bfloat16* dst;
        if (p < 16) src = sm.Wst + r * kLdK + 8 * p, dst = rec + kOffWN + 8 * p;
        else if (p < 32) src = sm.Ust + r * kLdK + 8 * (p - 16), dst = rec + kOffU + 8 * (p - 16);
        else src = sm.Aqk + r * kLdC + 8 * (p - 32), dst = rec + kOffAqk + 8 * (p - 32);
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    }
}

}  // namespace

void launch_prep_mma(const RuleArgs& a, const CudaHandles& h, __nv_bfloat16* ws) {
    static bool done[64] = {};
    raise_smem(prep_mma_kernel, PrepMmaSmem::bytes(), h.device, done);
    imp::cuda::LaunchConfig c = imp::cuda::launch_config(h);
    c.grid = prep_grid(a);
    c.block = dim3(kThreads);
    c.smem = PrepMmaSmem::bytes();
    IMP_CUDA_CHECK(imp::cuda::launch(c, prep_mma_kernel, a, ws));
}

}  // namespace imp::gdn::chunked
