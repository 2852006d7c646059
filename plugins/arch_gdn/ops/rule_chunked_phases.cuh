// The two phases of one chunk of 64 rows of the chunked delta rule (gdn_ops.h; the same steps as
// rule_chunked_wy_cpu), shared by the fused kernel (rule_chunked.cu) and the split kernels (rule_chunked_split.cu):
//   chunk_prep:  what does not depend on the state: A = strict_lower(beta_i k_i.k_j e_i/e_j), T = (I + A)^-1,
//                -w = -T (beta k e), u = T (beta v), Aqk = tril(scale q_i.k_j e_i/e_j), q e scale, k e_last/e
//                (e_i = exp(gc_i), gc = cumsum g), handed to a sink row by row;
//   state_chunk: v_new = u - w h, o = (q e scale) h + Aqk v_new, h = e_last h + (k e_last/e)^T v_new, with h in
//                fp32 accumulator fragments (warp w: key rows 16w..16w+15) and its bf16 copy in shared memory.
#pragma once
#include "rule_chunked_common.cuh"

namespace imp::gdn::chunked {

// Shared scratch of chunk_prep; kVW: value columns of v loaded (u is computed for those).
template <int kVW>
struct PrepScratch {
    static constexpr int kLdV = kVW + 8;
    __nv_bfloat16 *Q, *K, *KBG, *VB, *Tb;
    float *A, *T, *X, *gc, *beta, *stage;
    static constexpr size_t kBf16Buf = size_t(kC) * kLdK * 2;
    static constexpr size_t bytes() {
        return 3 * kBf16Buf + size_t(kC) * kLdV * 2 + size_t(kC) * kLdF * 4 + size_t(kC) * kLdC * 2 +
               kWarps * 256 * 4 + 3 * 256 * 4 + 2 * kC * 4;
    }
    __device__ unsigned char* carve(unsigned char* p) {  // returns the end
        Q = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        T = reinterpret_cast<float*>(Q);  // q is dead once q k^T is formed ([kC][kLdF] fp32 = one bf16 buffer)
        K = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        KBG = reinterpret_cast<__nv_bfloat16*>(p), p += kBf16Buf;
        VB = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdV * 2;
        A = reinterpret_cast<float*>(p), p += size_t(kC) * kLdF * 4;
        Tb = reinterpret_cast<__nv_bfloat16*>(p), p += size_t(kC) * kLdC * 2;
        stage = reinterpret_cast<float*>(p), p += kWarps * 256 * 4;
        X = reinterpret_cast<float*>(p), p += 3 * 256 * 4;
        gc = reinterpret_cast<float*>(p), p += kC * 4;
        beta = reinterpret_cast<float*>(p), p += kC * 4;
        return p;
    }
};
static_assert(size_t(kC) * kLdF * 4 == size_t(kC) * kLdK * 2, "T aliases Q");

// chunk_prep for rows [row0, row0 + n) of v-head h (key head kh), value columns [vcol0, vcol0 + kVW). The sink
// receives every row r < kC (rows past n hold zeros): qd(r, e, v), kd(r, e, v) for e < kD, aqk(r, c, v) for c < kC,
// wn(r, e, v) (-w) for e < kD, u(r, e, v) for e < kVW. Returns e_last = exp(gc[n - 1]); sm.gc and sm.beta stay valid
// until the next call. Begins with all threads in step; ends without a barrier (the sink's writes of the last
// phase are not yet visible to other warps).
template <int kVW, class Sink>
__device__ __forceinline__ float chunk_prep(const RuleArgs& a, PrepScratch<kVW>& sm, Sink& sink, int64_t row0, int n,
                                            int h, int kh, int vcol0, int tid, int lane, int warp) {
    using namespace nvcuda;
    constexpr int kLdV = PrepScratch<kVW>::kLdV;
    float* stage = sm.stage + warp * 256;
    chunk_gates(a, row0, n, h, sm.gc, sm.beta, tid, lane, warp);
    const float glast = sm.gc[n - 1];
    const float* qrow = a.qkv + row0 * a.qkv_stride + int64_t(kh) * kD;
    const float* krow = qrow + a.dims.key_dim();
    const float* vrow = a.qkv + row0 * a.qkv_stride + 2 * a.dims.key_dim() + int64_t(h) * kD + vcol0;
    auto put_qk = [&](int i, int e, float q, float k) {
        const float ei = __expf(sm.gc[i]);
        sm.Q[i * kLdK + e] = __float2bfloat16(q);
        sm.K[i * kLdK + e] = __float2bfloat16(k);
        sm.KBG[i * kLdK + e] = __float2bfloat16(k * sm.beta[i] * ei);
        sink.qd(i, e, q * ei * a.scale);
        sink.kd(i, e, k * __expf(glast - sm.gc[i]));
    };
    // 16-byte loads when the rows allow (every offset below is a multiple of 4 floats then).
    if (((reinterpret_cast<uintptr_t>(a.qkv) | uintptr_t(a.qkv_stride) * 4) & 15) == 0) {
        const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int idx = tid; idx < kC * kD / 4; idx += kThreads) {
            const int i = idx / (kD / 4), e = 4 * (idx % (kD / 4));
            const float4 q = i < n ? *reinterpret_cast<const float4*>(qrow + i * a.qkv_stride + e) : zero;
            const float4 k = i < n ? *reinterpret_cast<const float4*>(krow + i * a.qkv_stride + e) : zero;
            put_qk(i, e, q.x, k.x), put_qk(i, e + 1, q.y, k.y), put_qk(i, e + 2, q.z, k.z), put_qk(i, e + 3, q.w, k.w);
        }
        for (int idx = tid; idx < kC * kVW / 4; idx += kThreads) {
            const int i = idx / (kVW / 4), e = 4 * (idx % (kVW / 4));
            const float4 v = i < n ? *reinterpret_cast<const float4*>(vrow + i * a.qkv_stride + e) : zero;
            const float b = sm.beta[i];
            sm.VB[i * kLdV + e] = __float2bfloat16(v.x * b), sm.VB[i * kLdV + e + 1] = __float2bfloat16(v.y * b);
            sm.VB[i * kLdV + e + 2] = __float2bfloat16(v.z * b), sm.VB[i * kLdV + e + 3] = __float2bfloat16(v.w * b);
        }
    } else {
        for (int idx = tid; idx < kC * kD; idx += kThreads) {
            const int i = idx / kD, e = idx % kD;
            put_qk(i, e, i < n ? qrow[i * a.qkv_stride + e] : 0.f, i < n ? krow[i * a.qkv_stride + e] : 0.f);
        }
        for (int idx = tid; idx < kC * kVW; idx += kThreads) {
            const int i = idx / kVW, e = idx % kVW;
            const float v = i < n ? vrow[i * a.qkv_stride + e] : 0.f;
            sm.VB[i * kLdV + e] = __float2bfloat16(v * sm.beta[i]);
        }
    }
    __syncthreads();
    // A (strict lower, fp32, shared) and Aqk (lower, to the sink); tiles above the diagonal are zero.
    for (int t = warp; t < 32; t += kWarps) {
        const bool qk = t >= 16;
        const int ti = (t & 15) >> 2, tj = t & 3;
        if (tj > ti) {
            for (int e = lane; e < 256; e += 32) {
                const int r = 16 * ti + (e >> 4), c = 16 * tj + (e & 15);
                if (qk) sink.aqk(r, c, 0.f);
                else sm.A[r * kLdF + c] = 0.f;
            }
            continue;
        }
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        mma_k<FragA, FragBc>(acc, (qk ? sm.Q : sm.K) + 16 * ti * kLdK, kLdK, 16, sm.K + 16 * tj * kLdK, kLdK, 16,
                             kD / 16);
        epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
            const int r = 16 * ti + rr, c = 16 * tj + cc;
            const float decay = __expf(sm.gc[r] - sm.gc[c]);
            if (qk) sink.aqk(r, c, c <= r ? v * decay * a.scale : 0.f);
            else sm.A[r * kLdF + c] = c < r ? sm.beta[r] * v * decay : 0.f;
        });
    }
    __syncthreads();
    solve_unit_lower(sm, tid, lane, warp);
    // -w = -T (beta k e): 4 x kD/16 tiles; u = T (beta v): 4 x kVW/16 tiles (T is lower: k-steps up to the row tile).
    constexpr int kWT = 4 * (kD / 16), kUT = 4 * (kVW / 16);
    for (int t = warp; t < kWT + kUT; t += kWarps) {
        const bool is_u = t >= kWT;
        const int cols = is_u ? kVW / 16 : kD / 16, tt = is_u ? t - kWT : t;
        const int ti = tt / cols, tj = tt % cols;
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        if (is_u)
            mma_k<FragA, FragB>(acc, sm.Tb + 16 * ti * kLdC, kLdC, 16, sm.VB + 16 * tj, kLdV, 16 * kLdV, ti + 1);
        else
            mma_k<FragA, FragB>(acc, sm.Tb + 16 * ti * kLdC, kLdC, 16, sm.KBG + 16 * tj, kLdK, 16 * kLdK, ti + 1);
        epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
            if (is_u) sink.u(16 * ti + rr, 16 * tj + cc, v);
            else sink.wn(16 * ti + rr, 16 * tj + cc, -v);
        });
    }
    return __expf(glast);
}

// One chunk's state-independent operands in shared memory (bf16; rows past n zero): -w, q e scale, k e_last/e
// ([kC][kLdK]), Aqk ([kC][kLdC]) and u ([kC][kBV + 8], the block's value columns).
struct ChunkBuf {
    __nv_bfloat16 *WN, *QD, *KD, *Aqk, *U;
};

// state_chunk for the block's kBV value columns: h in hacc (fp32) and H ([kD][kBV + 8] bf16, the same values),
// VN ([kC][kBV + 8]) scratch, o rows [0, n) to orow + r * o_stride. Begins with b complete and visible to every
// warp; ends with all threads in step, H rewritten.
template <int kBV>
__device__ __forceinline__ void state_chunk(FragC (&hacc)[kBV / 16], const ChunkBuf& b, __nv_bfloat16* H,
                                            __nv_bfloat16* VN, float el, float* orow, int64_t o_stride, int n,
                                            float* stage, int lane, int warp) {
    using namespace nvcuda;
    constexpr int kLdV = kBV + 8, kCols = kBV / 16, kVT = 4 * kCols;
    // v_new = u - w h
    for (int t = warp; t < kVT; t += kWarps) {
        const int ti = t / kCols, tj = t % kCols;
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        mma_k<FragA, FragB>(acc, b.WN + 16 * ti * kLdK, kLdK, 16, H + 16 * tj, kLdV, 16 * kLdV, kD / 16);
        epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
            const int r = 16 * ti + rr, c = 16 * tj + cc;
            VN[r * kLdV + c] = __float2bfloat16(v + __bfloat162float(b.U[r * kLdV + c]));
        });
    }
    __syncthreads();
    // o = (q e scale) h + Aqk v_new (Aqk is lower: k-steps up to the row tile)
    for (int t = warp; t < kVT; t += kWarps) {
        const int ti = t / kCols, tj = t % kCols;
        FragC acc;
        wmma::fill_fragment(acc, 0.f);
        mma_k<FragA, FragB>(acc, b.QD + 16 * ti * kLdK, kLdK, 16, H + 16 * tj, kLdV, 16 * kLdV, kD / 16);
        mma_k<FragA, FragB>(acc, b.Aqk + 16 * ti * kLdC, kLdC, 16, VN + 16 * tj, kLdV, 16 * kLdV, ti + 1);
        epilogue(acc, stage, lane, [&](int rr, int cc, float v) {
            const int r = 16 * ti + rr;
            if (r < n) orow[r * o_stride + 16 * tj + cc] = v;
        });
    }
    // h = e_last h + (k e_last / e)^T v_new: the A operand is KD read column-major (its transpose).
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
#pragma unroll
        for (int e = 0; e < hacc[c].num_elements; ++e) hacc[c].x[e] *= el;
        mma_k<FragAc, FragB>(hacc[c], b.KD + 16 * warp, kLdK, 16 * kLdK, VN + 16 * c, kLdV, 16 * kLdV, kC / 16);
    }
    __syncthreads();  // every warp is done reading H and b
    store_h<kBV>(hacc, H, stage, lane, warp);
    __syncthreads();
}

}  // namespace imp::gdn::chunked
