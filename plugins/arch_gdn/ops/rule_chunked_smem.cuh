// Shared-memory layout and the UT inverse of the chunked delta-rule kernel (rule_chunked.cu). Row strides are padded
// by 16 bytes (bank spread for the WMMA tile loads; every tile start stays 32-byte aligned as WMMA requires).
#pragma once
#include <cuda_bf16.h>

namespace imp::gdn::chunked {

constexpr int kC = 64;   // chunk rows
constexpr int kD = 128;  // dk = dv
constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr int kLdK = kD + 8;  // bf16 [kC][kD] rows
constexpr int kLdC = kC + 8;  // bf16 [kC][kC] rows
constexpr int kLdF = kC + 4;  // fp32 [kC][kC] rows

template <int kBV>
struct Smem {
    static constexpr int kLdV = kBV + 8;  // bf16 [*][kBV] rows
    __nv_bfloat16 *Q, *QD, *K, *KBG, *KD, *WN, *Tb, *Aqk, *VB, *VN, *H;
    float *A, *T, *stage, *X, *gc, *beta;

    static constexpr size_t kBf16Bytes = size_t(kC) * kLdK * 2;  // one [kC][kD] bf16 buffer
    static constexpr size_t bytes() {
        return 5 * kBf16Bytes + 2 * size_t(kC) * kLdF * 4 + 2 * size_t(kC) * kLdC * 2 + 2 * size_t(kC) * kLdV * 2 +
               size_t(kD) * kLdV * 2 + kWarps * 256 * 4 + 3 * 256 * 4 + 2 * kC * 4;
    }
    __device__ explicit Smem(unsigned char* p) {
        auto take = [&p](size_t n) {
            unsigned char* r = p;
            p += n;
            return r;
        };
        Q = reinterpret_cast<__nv_bfloat16*>(take(kBf16Bytes));
        WN = Q;  // q is dead once q k^T is formed; -w is written after the inverse
        QD = reinterpret_cast<__nv_bfloat16*>(take(kBf16Bytes));
        K = reinterpret_cast<__nv_bfloat16*>(take(kBf16Bytes));
        KBG = reinterpret_cast<__nv_bfloat16*>(take(kBf16Bytes));
        KD = reinterpret_cast<__nv_bfloat16*>(take(kBf16Bytes));
        A = reinterpret_cast<float*>(take(size_t(kC) * kLdF * 4));
        T = reinterpret_cast<float*>(take(size_t(kC) * kLdF * 4));
        Tb = reinterpret_cast<__nv_bfloat16*>(take(size_t(kC) * kLdC * 2));
        Aqk = reinterpret_cast<__nv_bfloat16*>(take(size_t(kC) * kLdC * 2));
        VB = reinterpret_cast<__nv_bfloat16*>(take(size_t(kC) * kLdV * 2));
        VN = reinterpret_cast<__nv_bfloat16*>(take(size_t(kC) * kLdV * 2));
        H = reinterpret_cast<__nv_bfloat16*>(take(size_t(kD) * kLdV * 2));
        stage = reinterpret_cast<float*>(take(kWarps * 256 * 4));
        X = reinterpret_cast<float*>(take(3 * 256 * 4));
        gc = reinterpret_cast<float*>(take(kC * 4));
        beta = reinterpret_cast<float*>(take(kC * 4));
    }
};

// T = (I + A)^-1 for the strictly lower A [kC][kC] (fp32): the four 16x16 diagonal blocks by forward substitution
// (one lane per column), then the blocks below the diagonal by distance d = 1..3:
//   T_ij = -T_ii sum_{m=j}^{i-1} A_im T_mj.
// Writes sm.T (fp32, its upper blocks must be zero) and sm.Tb (bf16); begins and ends with all threads in step.
template <int kBV>
__device__ __forceinline__ void solve_unit_lower(Smem<kBV>& sm, int tid, int lane, int warp) {
    if (warp < 4 && lane < 16) {
        const int b = 16 * warp, j = lane;
        for (int i = 0; i < 16; ++i) {
            float t = i == j ? 1.f : 0.f;
            if (i > j)
                for (int m = j; m < i; ++m) t -= sm.A[(b + i) * kLdF + b + m] * sm.T[(b + m) * kLdF + b + j];
            sm.T[(b + i) * kLdF + b + j] = t;
        }
    }
    __syncthreads();
    for (int d = 1; d < 4; ++d) {
        const int nb = 4 - d;
        for (int idx = tid; idx < nb * 256; idx += kThreads) {
            const int bj = idx >> 8, r = (idx >> 4) & 15, c = idx & 15, bi = bj + d;
            float x = 0.f;
            for (int mb = bj; mb < bi; ++mb)
#pragma unroll
                for (int k = 0; k < 16; ++k)
                    x += sm.A[(16 * bi + r) * kLdF + 16 * mb + k] * sm.T[(16 * mb + k) * kLdF + 16 * bj + c];
            sm.X[idx] = x;
        }
        __syncthreads();
        for (int idx = tid; idx < nb * 256; idx += kThreads) {
            const int bj = idx >> 8, r = (idx >> 4) & 15, c = idx & 15, bi = bj + d;
            float t = 0.f;
#pragma unroll
            for (int k = 0; k < 16; ++k) t -= sm.T[(16 * bi + r) * kLdF + 16 * bi + k] * sm.X[(bj << 8) + k * 16 + c];
            sm.T[(16 * bi + r) * kLdF + 16 * bj + c] = t;
        }
        __syncthreads();
    }
    for (int idx = tid; idx < kC * kC; idx += kThreads) {
        const int i = idx / kC, j = idx % kC;
        sm.Tb[i * kLdC + j] = __float2bfloat16(sm.T[i * kLdF + j]);
    }
    __syncthreads();
}

}  // namespace imp::gdn::chunked
