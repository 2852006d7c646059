// One attention step checked against the CPU (shared by the attention tests): fresh random history and rows are
// stored through both executors' kv_store (the stored bytes must be equal), then attention runs on the CPU (same
// dtype, and an F32 pool) and on the GPU through every kernel that can take the step:
//   - prefills the tensor-core kernel takes (BF16 / F16 / FP8, max_query_len >= 16, head_dim <= 128 a multiple of 8;
//     BF16 / F16 head_dim 136..256 with AttnOptions::tensor_cores_hd256 on): it with 4 and with 8 warps per CTA
//     (bit-identical; head_dim 256 runs 4 both times) and the fp32 kernel (must differ: the tensor cores ran);
//   - decode steps (one row per sequence) over BF16 / F16 with head_dim 64 / 128 / 256 (AttnOptions::decode_hd256
//     switched on for them) and GQA group <= 8: the split-KV path, the one-kernel decode with 8 and 4 warps, and
//     the tensor-core kernel (AttnOptions::decode_mma_rows = 1);
//   - other steps: the default kernel.
// Tolerances (max |gpu - cpu| / max |cpu|): 5e-5 against the CPU on the same pool; against the F32 pool 5e-5 for
// F32, 2e-3 for BF16 when the inputs are representable in BF16; otherwise the rounding of K and V bounds the
// difference (relative L2 <= 1e-2 for BF16 / F16, <= 0.1 for FP8 E4M3).
#pragma once
#include <string>
#include <vector>

#include "exec/cuda/attention_decode.h"
#include "exec/cuda/attention_mma.h"
#include "exec/cuda/step_test_util.h"

namespace imp::cuda_test {

struct AttnShape {
    DType dtype;
    int n_head, n_kv, hd;
};

inline float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

inline AttentionParams attn_params(const AttnShape& sh) {
    AttentionParams p;
    p.n_head = sh.n_head;
    p.n_kv_head = sh.n_kv;
    p.head_dim = sh.hd;
    p.scale = 1.f / std::sqrt(float(sh.hd));
    return p;
}

// Saves the shared GPU executor's attention options and puts them back when it goes out of scope (a failed REQUIRE
// or a thrown error included), so one test's switches never leak into the next.
struct AttnOptionsGuard {
    const cuda_kernels::AttnOptions saved = gpu().attention_options();
    AttnOptionsGuard() = default;
    AttnOptionsGuard(const AttnOptionsGuard&) = delete;
    AttnOptionsGuard& operator=(const AttnOptionsGuard&) = delete;
    ~AttnOptionsGuard() { gpu().attention_options() = saved; }
};

// Whether attention() takes the one-kernel decode for this step when it is enabled (attention.cu's rule; head_dim
// 256 with AttnOptions::decode_hd256 on).
inline bool one_kernel_decode_taken(const AttnShape& sh, const Step& st) {
    const int group = sh.n_head / sh.n_kv;
    const int64_t max_ctx = int64_t(st.max_blocks) * st.block_size;
    return st.all_decode && (sh.dtype == DType::BF16 || sh.dtype == DType::F16) &&
           (sh.hd == 64 || sh.hd == 128 || sh.hd == 256) &&
           group <= 8 && cuda_kernels::one_kernel_decode_grid_ok(sh.n_kv, st.n_tokens, max_ctx, gpu().cuda()->sm_count);
}

inline void run_step(const AttnShape& sh, const std::vector<SeqSpec>& seqs, int32_t extra_blocks, bool bf16_inputs,
                     bool shuffle = true) {
    const uint32_t seed = fresh_seed();
    std::string layout;
    for (const SeqSpec& q : seqs)
        layout += q.pad ? " pad" : " " + std::to_string(q.ctx) + "+" + std::to_string(q.rows);
    INFO("seed " << seed << " dtype " << dtype_name(sh.dtype) << " heads " << sh.n_head << "/" << sh.n_kv << " hd "
                 << sh.hd << " sequences (history+rows):" << layout << " extra blocks " << extra_blocks
                 << " shuffled " << shuffle << " bf16 inputs " << bf16_inputs);
    std::mt19937 rng(seed);
    Step st = make_step(seqs, extra_blocks, rng, 3, shuffle);
    Pool pool = make_pool(sh.dtype, st.n_blocks, sh.n_kv, sh.hd);
    const int64_t width = int64_t(sh.n_kv) * sh.hd, kv_stride = width + 4;
    auto rows_kv = [&](size_t n) {
        auto x = rand_vec(rng, n * size_t(kv_stride), -2.f, 2.f);
        if (bf16_inputs)
            for (auto& e : x) e = bf16_round(e);
        return x;
    };
    const auto hk = rows_kv(st.hist_slots.size()), hv = rows_kv(st.hist_slots.size());
    store_rows(pool, hk, hv, kv_stride, st.hist_slots);
    const auto k = rows_kv(size_t(st.n_tokens)), v = rows_kv(size_t(st.n_tokens));
    store_rows(pool, k, v, kv_stride, st.slots);
    // The stored bytes are the CPU's bytes (conversion, rounding, scale, slots; the zero block stays zero).
    CHECK(from_dev(static_cast<uint8_t*>(pool.g.k), pool.bytes) == pool.ck);
    CHECK(from_dev(static_cast<uint8_t*>(pool.g.v), pool.bytes) == pool.cv);

    const int64_t q_stride = int64_t(sh.n_head) * sh.hd + 8;
    const auto q = rand_vec(rng, size_t(st.n_tokens * q_stride), -3.f, 3.f);
    const AttentionParams p = attn_params(sh);
    const size_t out_n = size_t(st.n_tokens) * sh.n_head * sh.hd;
    std::vector<float> ref(out_n), ref32(out_n);
    cpu().attention(q.data(), q_stride, pool.c, ref.data(), p, st.batch(false));
    cpu().attention(q.data(), q_stride, pool.c32, ref32.data(), p, st.batch(false));
    const float* dq = to_dev(q);

    // (head_dim 256: BF16 / F16 with AttnOptions::tensor_cores_hd256 on for the runs; 4 warps whatever is asked)
    const bool tc_case = (sh.dtype == DType::BF16 || sh.dtype == DType::F16 || sh.dtype == DType::F8_E4M3) &&
                         st.max_query_len >= cuda_kernels::kAttnMmaMinTokens && sh.hd % 8 == 0 &&
                         (sh.hd <= 128 || (sh.hd <= 256 && sh.hd > 128 && sh.dtype != DType::F8_E4M3));
    const bool dec_case = st.all_decode && (sh.dtype == DType::BF16 || sh.dtype == DType::F16) &&
                          (sh.hd == 64 || sh.hd == 128 || sh.hd == 256) && sh.n_head / sh.n_kv <= 8;
    const AttnOptionsGuard guard;  // every option set below is restored, whatever throws
    const bool tc_default = gpu().attention_options().tensor_cores, old_default = gpu().attention_options().decode_split;
    const bool f8_default = gpu().attention_options().tensor_cores_f8;
    // run: tensor cores with 4 / 8 warps (FP8 caches: tensor_cores_f8 on), fp32 kernel | split-KV, one-kernel
    // decode 8 / 4 warps, tensor cores (decode_mma_rows = 1) | default
    const int n_runs = tc_case ? 3 : dec_case ? 4 : 1;
    std::vector<std::vector<float>> outs;
    for (int run = 0; run < n_runs; ++run) {
        if (tc_case) {
            gpu().attention_options().tensor_cores = run < 2;
            gpu().attention_options().tensor_cores_f8 = run < 2;
            gpu().attention_options().mma_warps = run == 0 ? 4 : 8;
            gpu().attention_options().tensor_cores_hd256 = run < 2;
        } else if (dec_case) {
            gpu().attention_options().decode_split = run == 0;
            gpu().attention_options().decode_warps = run == 2 ? 4 : 8;
            gpu().attention_options().decode_hd256 = true;
            gpu().attention_options().decode_mma_rows = run == 3 ? 1 : 0;
            gpu().attention_options().tensor_cores_hd256 = true;
        }
        float* dout = to_dev(std::vector<float>(out_n, NAN));
        gpu().attention(dq, q_stride, pool.g, dout, p, st.batch(true));
        gpu().attention_options().tensor_cores = tc_default;
        gpu().attention_options().tensor_cores_f8 = f8_default;
        gpu().attention_options().mma_warps = 0;
        gpu().attention_options().decode_split = old_default;
        gpu().attention_options().decode_warps = 0;
        gpu().attention_options().decode_hd256 = guard.saved.decode_hd256;
        gpu().attention_options().tensor_cores_hd256 = guard.saved.tensor_cores_hd256;
        gpu().attention_options().decode_mma_rows = guard.saved.decode_mma_rows;
        const auto got = from_dev(dout, out_n);
        const double e_same = max_rel_err(got, ref), e32 = max_rel_err(got, ref32), l2 = rel_l2_err(got, ref32);
        INFO("run " << run << " (tensor-core case " << tc_case << ", decode case " << dec_case
                    << "): err vs same-dtype CPU " << e_same << ", vs F32 CPU max " << e32 << " l2 " << l2);
        CHECK(e_same <= 5e-5);
        if (sh.dtype == DType::F32) CHECK(e32 <= 5e-5);
        if (sh.dtype == DType::BF16 && bf16_inputs) CHECK(e32 <= 2e-3);
        if (sh.dtype == DType::BF16 || sh.dtype == DType::F16) CHECK(l2 <= 1e-2);
        if (sh.dtype == DType::F8_E4M3) CHECK(l2 <= 0.1);
        outs.push_back(got);
    }
    if (tc_case) {
        CHECK(outs[0] == outs[1]);  // a row's arithmetic does not depend on the CTA size
        CHECK(outs[0] != outs[2]);  // the tensor-core kernel ran
    }
    const int32_t max_pos = *std::max_element(st.token_pos.begin(), st.token_pos.end());
    if (dec_case && max_pos >= 100 && one_kernel_decode_taken(sh, st)) CHECK(outs[1] != outs[0]);  // it ran
    if (dec_case && max_pos >= 100) {  // the tensor-core kernel ran: its sums differ from every other kernel's
        CHECK(outs[3] != outs[0]);
        CHECK(outs[3] != outs[1]);
        CHECK(outs[3] != outs[2]);
    }
}

}  // namespace imp::cuda_test
