// The state kernel of gdn.rule_chunked's split path on mma.sync (variants 5 and 6 of RuleArgs::variant): the same work
// as state_kernel<kBV> (rule_chunked_split.cu) on the same workspace records, with the fragments in registers and two
// barriers per chunk. One block of 8 warps per (kBV = 32 or 64 value columns, v-head, sequence) walks the chunks:
//   barrier A  (the chunk's records have landed; H and VN are free), then the next chunk's records start to copy;
//   phase 1    warp (ti, cj) = (warp % 4, warp / 4): rows 16 ti .. + 15, columns kBV/2 cj .. + kBV/2 - 1 of
//              v_new = u + (-w) h  -> VN (bf16) and of (q e scale) h (kept in registers for o);
//   barrier B
//   phase 2    o = (q e scale) h + Aqk v_new for the same tile, written to global; the warp's state rows
//              16 warp .. + 15 (fp32 accumulators for the whole sequence): h = e_last h + (k e_last/e)^T v_new,
//              and their bf16 copy in H (the B operand of the next chunk's phase 1).
// e_last = exp(sum of the chunk's g): the g values are loaded one chunk ahead (off the critical path).
#include <cuda_bf16.h>

#include "gdn_kernels.h"
#include "imp/cuda/launch.cuh"
#include "imp/cuda/reduce.cuh"
#include "mma_sm80.cuh"
#include "rule_chunked_records.cuh"

namespace imp::gdn::chunked {

namespace {

using namespace imp::gdn::mma;

static_assert(kWarps == 8 && kD / 16 == kWarps, "phases 1 and 2: 4 row tiles x 2 column halves; the state: 16 key rows "
                                               "per warp");

// g of rows [c0, c0 + 64) of the sequence (lane: rows lane and lane + 32; rows past len count 0).
__device__ __forceinline__ float2 chunk_g(const RuleArgs& a, int64_t r0, int64_t len, int64_t c0, int h, int lane) {
    float2 v = make_float2(0.f, 0.f);
    if (c0 + lane < len) v.x = a.g[(r0 + c0 + lane) * a.dims.n_v_heads + h];
    if (c0 + lane + 32 < len) v.y = a.g[(r0 + c0 + lane + 32) * a.dims.n_v_heads + h];
    return v;
}

template <int kBV>
__global__ void __launch_bounds__(kThreads, 1) state_mma_kernel(RuleArgs a, const __nv_bfloat16* ws) {
    constexpr int kLdV = kBV + 8, kNB = kBV / 8, kHalf = kBV / 2, kNT = kHalf / 8;  // kNT: n8 tiles of a half
    imp::cuda::pdl_launch_dependents();
    imp::cuda::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem_raw[];
    StateSmem<kBV> sm(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
    const int vb = blockIdx.x, h = blockIdx.y, s = blockIdx.z, hv = a.dims.n_v_heads;
    const int64_t r0 = a.seqs.query_start_loc[s], len = a.seqs.query_start_loc[s + 1] - r0;
    const int n_chunks = int((len + kC - 1) / kC);
    if (n_chunks > 0) prefetch<kBV>(sm.buf(0), ws, r0, int(len < kC ? len : kC), hv, h, vb, tid);
    cp_async_commit();

    // The state rows of this warp: key i = 16 warp + g (+ 8), value column 8 nb + 2 t4 (+ 1) of the block; the slot
    // holds column j's keys contiguously (S^T).
    float* S = state_cols(a, s, h, vb * kBV);
    float hacc[kNB][4];
#pragma unroll
    for (int nb = 0; nb < kNB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            hacc[nb][e] = S[(8 * nb + 2 * t4 + (e & 1)) * kD + 16 * warp + g + 8 * (e >> 1)];
    auto store_h = [&] {
#pragma unroll
        for (int nb = 0; nb < kNB; ++nb) {
            __nv_bfloat16* p = sm.H + (16 * warp + g) * kLdV + 8 * nb + 2 * t4;
            store_bf16x2(p, hacc[nb][0], hacc[nb][1]);
            store_bf16x2(p + 8 * kLdV, hacc[nb][2], hacc[nb][3]);
        }
    };
    store_h();

    const int ti = warp & 3, cj = warp >> 2;
    const bool o_vec = ((reinterpret_cast<uintptr_t>(a.o) | uintptr_t(a.o_stride) * 4) & 7) == 0;
    float* obase = a.o + r0 * a.o_stride + int64_t(h) * kD + vb * kBV + kHalf * cj;
    float2 gnext = chunk_g(a, r0, len, 0, h, lane);
    for (int ci = 0; ci < n_chunks; ++ci) {
        const int64_t c0 = int64_t(ci) * kC;
        const int n = int(len - c0 < kC ? len - c0 : kC);
        const float el = __expf(imp::cuda::warp_sum(gnext.x + gnext.y));
        gnext = chunk_g(a, r0, len, c0 + kC, h, lane);
        cp_async_wait_0();
        __syncthreads();  // barrier A
        if (ci + 1 < n_chunks) {
            const int64_t c1 = c0 + kC;
            prefetch<kBV>(sm.buf((ci + 1) & 1), ws, r0 + c1, int(len - c1 < kC ? len - c1 : kC), hv, h, vb, tid);
        }
        cp_async_commit();
        const ChunkBuf b = sm.buf(ci & 1);

        // Phase 1: (-w) h and (q e scale) h over the 128 keys.
        float accW[kNT][4], accQ[kNT][4];
#pragma unroll
        for (int nb = 0; nb < kNT; ++nb) zero(accW[nb]), zero(accQ[nb]);
#pragma unroll
        for (int ks = 0; ks < kD / 16; ++ks) {
            uint32_t aw[4], aq[4];
            ldsm_x4(aw, b.WN + 16 * ti * kLdK + 16 * ks + a_off(lane, kLdK));
            ldsm_x4(aq, b.QD + 16 * ti * kLdK + 16 * ks + a_off(lane, kLdK));
#pragma unroll
            for (int np = 0; np < kNT / 2; ++np) {
                uint32_t bh[4];
                ldsm_x4_trans(bh, sm.H + 16 * ks * kLdV + kHalf * cj + 16 * np + a_off(lane, kLdV));
                mma_bf16(accW[2 * np], aw, bh[0], bh[1]);
                mma_bf16(accW[2 * np + 1], aw, bh[2], bh[3]);
                mma_bf16(accQ[2 * np], aq, bh[0], bh[1]);
                mma_bf16(accQ[2 * np + 1], aq, bh[2], bh[3]);
            }
        }
#pragma unroll
        for (int nb = 0; nb < kNT; ++nb)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int r = 16 * ti + g + 8 * hf, c = kHalf * cj + 8 * nb + 2 * t4;
                const float2 u = load_bf16x2(b.U + r * kLdV + c);
                store_bf16x2(sm.VN + r * kLdV + c, u.x + accW[nb][2 * hf], u.y + accW[nb][2 * hf + 1]);
            }
        __syncthreads();  // barrier B

        // Phase 2: o = (q e scale) h + Aqk v_new (Aqk is lower: k-steps up to the row tile).
        for (int ks = 0; ks <= ti; ++ks) {
            uint32_t aa[4];
            ldsm_x4(aa, b.Aqk + 16 * ti * kLdC + 16 * ks + a_off(lane, kLdC));
#pragma unroll
            for (int np = 0; np < kNT / 2; ++np) {
                uint32_t bv[4];
                ldsm_x4_trans(bv, sm.VN + 16 * ks * kLdV + kHalf * cj + 16 * np + a_off(lane, kLdV));
                mma_bf16(accQ[2 * np], aa, bv[0], bv[1]);
                mma_bf16(accQ[2 * np + 1], aa, bv[2], bv[3]);
            }
        }
#pragma unroll
        for (int nb = 0; nb < kNT; ++nb)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int r = 16 * ti + g + 8 * hf;
                if (r >= n) continue;
                float* p = obase + (c0 + r) * a.o_stride + 8 * nb + 2 * t4;
                if (o_vec) *reinterpret_cast<float2*>(p) = make_float2(accQ[nb][2 * hf], accQ[nb][2 * hf + 1]);
                else p[0] = accQ[nb][2 * hf], p[1] = accQ[nb][2 * hf + 1];
            }
        // h = e_last h + (k e_last/e)^T v_new: A = KD^T (KD is [chunk row][key]: transposed loads), B = VN.
#pragma unroll
        for (int nb = 0; nb < kNB; ++nb)
#pragma unroll
            for (int e = 0; e < 4; ++e) hacc[nb][e] *= el;
#pragma unroll
        for (int ks = 0; ks < kC / 16; ++ks) {
            uint32_t ak[4];
            ldsm_x4_trans(ak, b.KD + 16 * ks * kLdK + 16 * warp + bt_off(lane, kLdK));
#pragma unroll
            for (int np = 0; np < kBV / 16; ++np) {
                uint32_t bv[4];
                ldsm_x4_trans(bv, sm.VN + 16 * ks * kLdV + 16 * np + a_off(lane, kLdV));
                mma_bf16(hacc[2 * np], ak, bv[0], bv[1]);
                mma_bf16(hacc[2 * np + 1], ak, bv[2], bv[3]);
            }
        }
        store_h();  // the warp's own rows of H: no other warp reads H before the next barrier A
    }
#pragma unroll
    for (int nb = 0; nb < kNB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            S[(8 * nb + 2 * t4 + (e & 1)) * kD + 16 * warp + g + 8 * (e >> 1)] = hacc[nb][e];
}

}  // namespace

void launch_state_mma(const RuleArgs& a, const CudaHandles& h, const __nv_bfloat16* ws, int bv) {
    static bool done32[64] = {}, done64[64] = {};
    if (bv == 64) launch_state_grid<64>(state_mma_kernel<64>, a, h, ws, done64);
    else launch_state_grid<32>(state_mma_kernel<32>, a, h, ws, done32);
}

}  // namespace imp::gdn::chunked
