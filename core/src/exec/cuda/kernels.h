// Launchers of the CUDA executor's kernels (defined in the .cu files beside this). Each checks its launch with
// IMP_CUDA_CHECK_LAUNCH; pointer arguments are device memory; nothing here allocates or synchronizes. Every kernel
// here follows the PDL rule of launch.cuh, so a Queue may ask for programmatic dependent launch.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "exec/cuda/attention_options.h"
#include "imp/executor.h"

namespace imp::cuda_kernels {

// Where a launcher queues its kernels: the stream, and whether they are launched with PDL (sm_90+ only).
struct Queue {
    cudaStream_t stream = nullptr;
    bool pdl = false;
};

// prefetch.cu (Executor::prefetch_l2): at most kPrefetchRanges ranges and kPrefetchMaxBytes in all per call; the
// rest is dropped.
constexpr int kPrefetchRanges = 16;
constexpr int64_t kPrefetchMaxBytes = int64_t(40) << 20;
void l2_prefetch(const DeviceRange* ranges, size_t n, int sm_count, Queue s);

// norm.cu
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps, Queue s);

// rope.cu
void rope(float* x, int64_t row_stride, const int32_t* positions, int64_t n_tokens, int n_heads, const RopeParams& p,
          Queue s);

// elementwise.cu
void swiglu(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride, float* out, int64_t n_rows,
            int64_t n, Queue s);
void add(float* x, const float* y, int64_t n, Queue s);

// rope_kv_store.cu: the fused attention prologue (Executor::rope_kv_store), one kernel; head_dim <= 256. Rows at
// b.token_pos; rows whose slot (b.slot_mapping) is -1 or outside the pool get q rotated but nothing stored.
void rope_kv_store(float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                   const float* q_norm, const float* k_norm, float norm_eps, const StepBatch& b, int n_head,
                   int n_kv_head, const RopeParams& rope, const KVCacheView& kv, Queue s);

// kv_store.cu: rows whose slot is -1 (or outside the pool's n_blocks * block_size slots) are skipped on the device.
void kv_store(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
              const int32_t* slot_mapping, int64_t n_tokens, Queue s);

// attention.cu: prefill and decode over the sequences of a step (partials of the split-KV decode go to `scratch`).
struct AttnScratch {
    float* data = nullptr;
    size_t floats = 0;
};
void attention_init();  // raises the shared-memory limit of every instantiation once (call outside graph capture)
void attention(const float* q, int64_t q_stride, const KVCacheView& kv, float* out, const AttentionParams& p,
               const StepBatch& b, const AttnScratch& scratch, const AttnOptions& opt, int sm_count, Queue s);

// sample.cu: the sampler's device buffers, sized once for a maximum vocabulary.
constexpr int kArgmaxBlocks = 128;
constexpr int64_t kSampleBatchRows = 256;  // greedy rows per batched argmax launch
constexpr int kFastTopK = 64;             // top-k rows up to this k: no full sort (sample_topk_rows)
constexpr int kTopKBatchRows = 64;        // rows per sample_topk_rows launch pair
struct SampleScratch {
    float* keys_in = nullptr;
    float* keys_out = nullptr;
    int32_t* ids_in = nullptr;
    int32_t* ids_out = nullptr;
    float* block_vals = nullptr;   // per-block partial argmax: kArgmaxBlocks * kSampleBatchRows
    int32_t* block_ids = nullptr;
    double* parts = nullptr;       // 2 * kArgmaxBlocks partial sums
    float* cand_keys = nullptr;    // top-k candidates: kTopKBatchRows * kArgmaxBlocks * kFastTopK
    int32_t* cand_ids = nullptr;
    float* top_keys = nullptr;     // each row's sorted top-k: kTopKBatchRows * kFastTopK
    int32_t* top_ids = nullptr;
    void* sort_temp = nullptr;
    size_t sort_temp_bytes = 0;
    int64_t max_vocab = 0;
};
// Bytes of CUB sort temp storage for max_vocab items.
size_t sample_sort_temp_bytes(int64_t max_vocab);
// One row: u is the uniform draw in [0, 1) (sample_uniform(seed, step), computed on the host). Rows that
// topk_row_fits takes go to sample_topk_rows instead (this runs them too, slower: a full sort).
void sample(const float* logits, int64_t n_vocab, const SamplingParams& p, double u, const int32_t* recent,
            int64_t n_recent, int32_t* out, const SampleScratch& sc, Queue s);
// Greedy without a penalty for n_rows rows (row r at logits + r * logits_stride): out[r] = the lowest id of row
// r's maximum. One pair of launches per kSampleBatchRows rows.
void sample_argmax_rows(const float* logits, int64_t logits_stride, int64_t n_rows, int64_t n_vocab, int32_t* out,
                        const SampleScratch& sc, Queue s);
// Rows sampled without a full sort, many in one launch pair: drawing rows with 0 < top_k <= kFastTopK, and greedy
// rows with a repetition penalty (as top-1), when n_vocab is above one slice (2048) and within the scratch.
bool topk_row_fits(const SamplingParams& p, bool penalty, int64_t n_vocab, int64_t max_vocab);
struct TopKRow {
    int64_t row = 0;            // logits at logits + row * logits_stride, the token to out[row]
    SamplingParams p;
    double u = 0;               // the draw (sample_uniform(seed, step)); unused for greedy rows
    const int32_t* recent = nullptr;  // device: the repetition penalty's tokens (n_recent), or null
    int64_t n_recent = 0;
};
// Up to kTopKBatchRows rows per launch pair (more: several pairs): each row's slices radix-sorted in blocks of
// 2048 keeping their best top_k (the penalty applied as they load), then one block per row merges them and runs the
// chain of sample(); the same order, sums and draw as sample() and sample_reference.
void sample_topk_rows(const float* logits, int64_t logits_stride, int64_t n_vocab, const TopKRow* rows,
                      int64_t n_rows, int32_t* out, const SampleScratch& sc, Queue s);

}  // namespace imp::cuda_kernels
