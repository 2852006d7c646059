// Attention dispatch over a multi-sequence step (StepBatch): validates the shapes, picks the padded head dim and rows
// per block, and chooses between the tensor-core prefill kernel (attention_mma.cuh: BF16 / F16 KV, max_query_len >=
// kAttnMmaMinTokens, head_dim <= 128 a multiple of 8, or <= 256 with AttnOptions::tensor_cores_hd256), the fp32
// one-pass kernel (other prefills), the one-kernel decode (attention_decode.cuh: one row per sequence, BF16 / F16 KV,
// head_dim 64 / 128 (256 with AttnOptions::decode_hd256), GQA group <= 8; the default,
// off with AttnOptions::decode_split) and the split-KV decode (other decodes) with its combine kernel. Launch
// shapes come only from host values (n_tokens, n_seqs, max_blocks, max_query_len, all_decode), so every path can be
// captured in a CUDA graph and replayed with other positions, lengths and block tables.
#include <algorithm>
#include <cmath>
#include <string>

#include "exec/cuda/attention_decode.cuh"
#include "exec/cuda/attention_decode.h"
#include "exec/cuda/attention_kernel.cuh"
#include "exec/cuda/attention_mma.cuh"
#include "exec/cuda/attention_mma.h"
#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "imp/error.h"

namespace imp::cuda_kernels {

extern template cudaError_t attn_launch_typed<KvF32>(const AttnArgs&, int, int, dim3, Queue);
extern template cudaError_t attn_launch_typed<KvF16>(const AttnArgs&, int, int, dim3, Queue);
extern template cudaError_t attn_launch_typed<KvBF16>(const AttnArgs&, int, int, dim3, Queue);
extern template cudaError_t attn_launch_typed<KvF8>(const AttnArgs&, int, int, dim3, Queue);
extern template cudaError_t attn_init_typed<KvF32>();
extern template cudaError_t attn_init_typed<KvF16>();
extern template cudaError_t attn_init_typed<KvBF16>();
extern template cudaError_t attn_init_typed<KvF8>();
extern template cudaError_t attn_mma_launch_typed<KvF16>(const AttnArgs&, int, int, dim3, Queue);
extern template cudaError_t attn_mma_launch_typed<KvBF16>(const AttnArgs&, int, int, dim3, Queue);
extern template cudaError_t attn_mma_init_typed<KvF16>();
extern template cudaError_t attn_mma_init_typed<KvBF16>();
extern template cudaError_t attn_mma_launch_typed<KvF8>(const AttnArgs&, int, int, dim3, Queue);
extern template cudaError_t attn_mma_init_typed<KvF8>();
extern template cudaError_t attn_decode_launch_typed<KvF16>(const AttnArgs&, int, Queue);
extern template cudaError_t attn_decode_launch_typed<KvBF16>(const AttnArgs&, int, Queue);
extern template cudaError_t attn_decode_init_typed<KvF16>();
extern template cudaError_t attn_decode_init_typed<KvBF16>();


namespace {

// Row t = blockIdx.y, head h = blockIdx.x: out[t, h] = sum_s 2^(m_s - M) o_s / sum_s 2^(m_s - M) l_s over the splits
// that hold positions <= token_pos[t].
__global__ void attn_combine_kernel(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                                    const int32_t* __restrict__ token_pos, int64_t max_ctx, int split_len,
                                    int n_splits, int hd, float* __restrict__ out) {
    pdl_launch_dependents();
    pdl_wait();
    const int h = blockIdx.x;
    const int64_t t = blockIdx.y;
    const int64_t slot = t * gridDim.x + h;  // (row, head)
    int64_t pos = token_pos[t];
    pos = pos >= max_ctx ? max_ctx - 1 : pos;
    float* o = out + slot * hd;
    if (pos < 0) {
        for (int d = threadIdx.x; d < hd; d += blockDim.x) o[d] = 0.f;
        return;
    }
    const int n_act = min(n_splits, int(pos / split_len) + 1);
    const float* ml = part_ml + slot * n_splits * 2;
    float M = -INFINITY;
    for (int s = 0; s < n_act; ++s) M = fmaxf(M, ml[2 * s]);
    float den = 0.f;
    for (int s = 0; s < n_act; ++s) den += exp2f(ml[2 * s] - M) * ml[2 * s + 1];
    const float inv = den > 0.f ? 1.f / den : 0.f;
    const float* po = part_o + slot * n_splits * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float num = 0.f;
        for (int s = 0; s < n_act; ++s) num += exp2f(ml[2 * s] - M) * po[int64_t(s) * hd + d];
        o[d] = num * inv;
    }
}

int rows_for(int64_t rows, int hdp) {
    const int rmax = hdp > 128 ? 16 : 32;
    const int r = rows <= 4 ? 4 : rows <= 8 ? 8 : rows <= 16 ? 16 : 32;
    return r < rmax ? r : rmax;
}

}  // namespace

void attention_init() {
    IMP_CUDA_CHECK(attn_init_typed<KvF32>());
    IMP_CUDA_CHECK(attn_init_typed<KvF16>());
    IMP_CUDA_CHECK(attn_init_typed<KvBF16>());
    IMP_CUDA_CHECK(attn_init_typed<KvF8>());
    IMP_CUDA_CHECK(attn_mma_init_typed<KvF16>());
    IMP_CUDA_CHECK(attn_mma_init_typed<KvBF16>());
    IMP_CUDA_CHECK(attn_mma_init_typed<KvF8>());
    IMP_CUDA_CHECK(attn_decode_init_typed<KvF16>());
    IMP_CUDA_CHECK(attn_decode_init_typed<KvBF16>());
}

void attention(const float* q, int64_t q_stride, const KVCacheView& kv, float* out, const AttentionParams& p,
               const StepBatch& b, const AttnScratch& scratch, const AttnOptions& opt, int sm_count, Queue s) {
    if (p.n_kv_head <= 0 || p.n_head % p.n_kv_head != 0 || p.n_kv_head != kv.n_kv_heads || p.head_dim != kv.head_dim)
        throw Error("cuda attention: " + std::to_string(p.n_head) + " heads / " + std::to_string(p.n_kv_head) +
                    " KV heads of dim " + std::to_string(p.head_dim) + " do not fit the KV cache (" +
                    std::to_string(kv.n_kv_heads) + " heads of dim " + std::to_string(kv.head_dim) + ")");
    if (p.head_dim <= 0 || p.head_dim > 256)
        throw Error("cuda attention: head_dim " + std::to_string(p.head_dim) + " is not supported (1..256)");
    if (kv.block_size <= 0 || b.max_blocks <= 0)
        throw Error("cuda attention: KV block size " + std::to_string(kv.block_size) + " and block-table width " +
                    std::to_string(b.max_blocks) + " must be positive");
    if (b.n_tokens <= 0) return;
    if (b.n_seqs <= 0 || !b.token_pos || !b.block_tables || (!b.all_decode && !b.query_start_loc))
        throw Error("cuda attention: step of " + std::to_string(b.n_tokens) + " rows needs n_seqs > 0 (got " +
                    std::to_string(b.n_seqs) + "), token_pos, block_tables and query_start_loc");
    if (b.all_decode && b.n_tokens != b.n_seqs)
        throw Error("cuda attention: an all-decode step has one row per sequence, but " + std::to_string(b.n_tokens) +
                    " rows for " + std::to_string(b.n_seqs) + " sequences");
    size_t esize = 0;
    switch (kv.dtype) {
        case DType::F32: esize = 4; break;
        case DType::F16: case DType::BF16: esize = 2; break;
        case DType::F8_E4M3: esize = 1; break;
        default:
            throw Error(std::string("cuda attention: KV cache dtype ") + dtype_name(kv.dtype) +
                        " is not supported (F32, F16, BF16, F8_E4M3)");
    }
    const int hd = p.head_dim;
    const int hdp = hd <= 64 ? 64 : hd <= 128 ? 128 : 256;
    const int tk = hdp > 128 ? 32 : 64;
    const int group = p.n_head / p.n_kv_head;
    // Rows of the longest sequence (a host hint; n_tokens bounds it when the hint is missing).
    const bool decode = b.all_decode || (b.max_query_len == 1 && b.n_tokens == b.n_seqs);
    const int64_t mql = decode ? 1 : b.max_query_len > 0 ? std::min<int64_t>(b.max_query_len, b.n_tokens) : b.n_tokens;
    const int64_t max_ctx = int64_t(b.max_blocks) * kv.block_size;

    AttnArgs a{};
    a.q = q;
    a.q_stride = q_stride;
    a.k = kv.k;
    a.v = kv.v;
    a.token_pos = b.token_pos;
    a.query_start_loc = b.query_start_loc;
    a.block_tables = b.block_tables;
    a.max_blocks = b.max_blocks;
    a.block_size = kv.block_size;
    a.max_ctx = max_ctx;
    a.n_seqs = b.n_seqs;
    a.decode = decode;
    a.k_scale = kv.k_scale;
    a.v_scale = kv.v_scale;
    a.n_head = p.n_head;
    a.n_kv_head = p.n_kv_head;
    a.group = group;
    a.hd = hd;
    a.qscale = p.scale * 1.4426950408889634f;
    a.n_tokens = b.n_tokens;
    a.out = out;
    a.vec_kv = (size_t(hd) * esize) % 16 == 0 && aligned16(kv.k) && aligned16(kv.v);

    const int64_t total_rows = b.n_tokens * group;
    const int64_t seq_rows = mql * group;  // rows of the longest sequence
    const bool mma_dtype = kv.dtype == DType::BF16 || kv.dtype == DType::F16 ||
                           (kv.dtype == DType::F8_E4M3 && opt.tensor_cores_f8);
    // Many-row decode steps may take the tensor-core kernel too (AttnOptions::decode_mma_rows): it then reads each
    // sequence's rows from query_start_loc (one token each) instead of assuming decode's token s = sequence s.
    const bool decode_mma = decode && opt.decode_mma_rows > 0 && b.n_tokens >= opt.decode_mma_rows && b.query_start_loc;
    const bool mma = mma_dtype && (mql >= kAttnMmaMinTokens || decode_mma) &&
                     hd % 8 == 0 &&
                     (hd <= 128 || (hdp == 256 && opt.tensor_cores_hd256 && kv.dtype != DType::F8_E4M3)) &&
                     total_rows <= INT32_MAX - kMmaMaxRows && a.vec_kv &&
                     (reinterpret_cast<uintptr_t>(out) & 7) == 0 && opt.tensor_cores;
    if (mma) {
        int warps = opt.mma_warps == 4 || opt.mma_warps == 8 ? opt.mma_warps : 0;
        if (warps == 0) warps = int64_t(div_up(total_rows, 128)) * p.n_kv_head >= 2 * int64_t(sm_count) ? 8 : 4;
        if (hdp == 256) warps = 4;  // 8 warps would need 270 KB of shared memory
        const dim3 grid(unsigned(attn_mma_blocks(b.n_seqs, b.n_tokens, group, warps)), unsigned(p.n_kv_head));
        a.decode = false;  // the kernel walks query_start_loc (a decode step's: 0, 1, ..., n_seqs)
        if (kv.dtype == DType::BF16)
            IMP_CUDA_CHECK(attn_mma_launch_typed<KvBF16>(a, hdp, warps, grid, s));
        else if (kv.dtype == DType::F16)
            IMP_CUDA_CHECK(attn_mma_launch_typed<KvF16>(a, hdp, warps, grid, s));
        else
            IMP_CUDA_CHECK(attn_mma_launch_typed<KvF8>(a, hdp, warps, grid, s));
        return;
    }
    const bool decode1 = decode && (kv.dtype == DType::BF16 || kv.dtype == DType::F16) &&
                         (hd == 64 || hd == 128 || (hd == 256 && opt.decode_hd256)) &&
                         group >= 1 && group <= kDecMaxGroup && a.vec_kv && !opt.decode_split &&
                         b.n_tokens <= 65535 &&
                         (opt.decode_one_any_grid || one_kernel_decode_grid_ok(p.n_kv_head, b.n_tokens, max_ctx, sm_count));
    if (decode1) {
        const int warps = opt.decode_warps == 4 || opt.decode_warps == 8 ? opt.decode_warps : dec_default_warps(hd);
        if (kv.dtype == DType::BF16)
            IMP_CUDA_CHECK(attn_decode_launch_typed<KvBF16>(a, warps, s));
        else
            IMP_CUDA_CHECK(attn_decode_launch_typed<KvF16>(a, warps, s));
        return;
    }
    const int rows = rows_for(seq_rows, hdp);
    a.tiles_per_seq = div_up(seq_rows, rows);
    const int64_t row_blocks = int64_t(a.tiles_per_seq) * b.n_seqs;
    int n_splits = 1;
    int64_t split_len = 0;
    if (decode && b.n_tokens <= 65535) {  // (the combine grid holds n_tokens in y)
        // Split the positions a block table can address (not the current lengths: the launch must not depend on
        // them) so that the grid holds about three blocks per SM, within the scratch the executor reserved for the
        // partial results.
        const int64_t blocks_per_split = row_blocks * p.n_kv_head;
        const int64_t want = std::max<int64_t>(1, (3 * int64_t(sm_count) + blocks_per_split - 1) / blocks_per_split);
        split_len = (max_ctx + want - 1) / want;
        const int64_t per_split = b.n_tokens * p.n_head * (hd + 2);
        const int64_t max_splits = std::max<int64_t>(1, int64_t(scratch.floats) / per_split);
        split_len = std::max(split_len, (max_ctx + max_splits - 1) / max_splits);
        split_len = (split_len + tk - 1) / tk * tk;
        n_splits = div_up(max_ctx, split_len);
        if (n_splits > 1 && int64_t(n_splits) * per_split > int64_t(scratch.floats))
            throw Error("cuda attention: decode scratch of " + std::to_string(scratch.floats) +
                        " floats is too small for " + std::to_string(n_splits) + " splits");
    }
    if (n_splits > 1) {
        a.split_len = int(split_len);
        a.n_splits = n_splits;
        a.part_o = scratch.data;
        a.part_ml = scratch.data + b.n_tokens * p.n_head * n_splits * hd;
    }
    const dim3 grid(unsigned(row_blocks), unsigned(p.n_kv_head), unsigned(n_splits));
    switch (kv.dtype) {
        case DType::F32: IMP_CUDA_CHECK(attn_launch_typed<KvF32>(a, hdp, rows, grid, s)); break;
        case DType::F16: IMP_CUDA_CHECK(attn_launch_typed<KvF16>(a, hdp, rows, grid, s)); break;
        case DType::BF16: IMP_CUDA_CHECK(attn_launch_typed<KvBF16>(a, hdp, rows, grid, s)); break;
        default: IMP_CUDA_CHECK(attn_launch_typed<KvF8>(a, hdp, rows, grid, s)); break;
    }
    if (n_splits > 1)
        IMP_CUDA_CHECK(launch(attn_combine_kernel, dim3(unsigned(p.n_head), unsigned(b.n_tokens)),
                              dim3(hd > 64 ? 128 : 64), 0, s.stream, s.pdl, a.part_o, a.part_ml, b.token_pos, max_ctx,
                              a.split_len, n_splits, hd, out));
}

}  // namespace imp::cuda_kernels
