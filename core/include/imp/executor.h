// imp SDK: an Executor is one device (the CPU, or one CUDA GPU). It owns the memory of a loaded model (weights,
// KV cache, activations, scratch: planned, then allocated once) and provides the common ops every architecture
// uses. Activations are fp32, row-major, [n_tokens, width]; every pointer passed to an op lives on this executor's
// device. Layers call ops; they never allocate.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "imp/dtype.h"
#include "imp/export.h"

namespace imp {

enum class DeviceKind { CPU, CUDA };

// One layer's KV cache: a pool of n_blocks physical blocks of block_size positions, shared by every sequence. A
// KV slot is block * block_size + row; element (slot, head, d) of K is at k + (slot * n_kv_heads + head) * head_dim
// + d, in elements of `dtype` (F32, F16, BF16 or F8_E4M3); same for V. For F8_E4M3 the stored value is x / k_scale
// (x / v_scale). Which blocks hold which sequence's positions is the step's business (StepBatch::block_tables).
struct KVCacheView {
    void* k = nullptr;
    void* v = nullptr;
    DType dtype = DType::F32;
    int64_t n_blocks = 0;
    int n_kv_heads = 0;
    int head_dim = 0;
    int block_size = 16;
    float k_scale = 1.f, v_scale = 1.f;
};

// The sequence layout of one forward step over the tokens of n_seqs sequences (vLLM's attention metadata; llama.cpp's
// llama_batch). Rows are grouped by sequence: sequence s owns rows [query_start_loc[s], query_start_loc[s + 1]), in
// position order. Every array lives on the executor's device, so a captured step can be replayed with other
// contents; the fields marked "host" are hints for kernel choice fixed at capture.
// Padding (graph buckets): a padding sequence has one row at position 0, slot_mapping -1 (nothing written) and a
// block table that points at a block the engine keeps zero, so every kernel can run it without a special case.
struct StepBatch {
    int64_t n_tokens = 0;                     // host: rows of the step
    int32_t n_seqs = 0;                       // host
    const int32_t* token_pos = nullptr;       // [n_tokens] position of each row in its sequence
    const int32_t* token_seq = nullptr;       // [n_tokens] sequence index of each row, in [0, n_seqs)
    const int32_t* query_start_loc = nullptr; // [n_seqs + 1]
    const int32_t* seq_lens = nullptr;        // [n_seqs] KV positions of the sequence after this step
    const int32_t* block_tables = nullptr;    // [n_seqs, max_blocks] physical KV block of each logical block
    int32_t max_blocks = 0;                   // host: row stride of block_tables; positions < max_blocks * block_size
    const int32_t* slot_mapping = nullptr;    // [n_tokens] KV slot each row's K/V is written to; -1: not written
    const int32_t* state_slots = nullptr;     // [n_seqs] recurrent-state slot of each sequence
    int32_t max_query_len = 0;                // host: most rows of one sequence in this step
    bool all_decode = false;                  // host: every sequence has exactly one row (n_tokens == n_seqs)
};

struct RopeParams {
    int head_dim = 0;      // stride between heads in x
    int n_rot = 0;         // rotated dims at the start of each head (partial rotary when < head_dim)
    float base = 10000.f;  // theta base
    bool neox = false;     // true: pairs (i, i + n_rot/2) (HF rotate-half); false: pairs (2i, 2i+1) (GGML "normal")
    float freq_scale = 1.f;                // linear position scaling (1/factor)
    const float* freq_factors = nullptr;   // n_rot/2 divisors of the angle (Llama-3 rope_freqs), or null
};

struct AttentionParams {
    int n_head = 0;
    int n_kv_head = 0;
    int head_dim = 0;
    float scale = 0.f;   // softmax scale, usually 1/sqrt(head_dim)
};

// Sampling parameters (same meaning as the profile's [sampling] keys).
struct SamplingParams {
    float temperature = 0.f;  // <= 0: greedy
    int32_t top_k = 40;       // 0 = off
    float top_p = 1.f;        // 1 = off
    float min_p = 0.f;        // 0 = off
    float repeat_penalty = 1.f;
    uint64_t seed = 0;
};

// One row to sample (a sequence's last logits): its parameters, the draw's counter, and its recent tokens for the
// repetition penalty (n_recent ids starting at `recent_offset` in the op's recent buffer).
struct SampleRow {
    SamplingParams p;
    uint64_t step = 0;
    int64_t recent_offset = 0;
    int64_t n_recent = 0;
};

// Handles a CUDA executor shares with plugins' kernels (void* so the SDK needs no CUDA headers):
// stream = cudaStream_t, cublas = cublasHandle_t, cublaslt = cublasLtHandle_t.
struct CudaHandles {
    int device = 0;
    int cc = 0;  // compute capability, major*10+minor
    int sm_count = 0;
    void* stream = nullptr;
    void* cublas = nullptr;
    void* cublaslt = nullptr;
    void* lt_workspace = nullptr;  // cuBLASLt workspace
    size_t lt_workspace_bytes = 0;
    // The executor launches its kernels with programmatic dependent launch (sm_90+, unless [plugin.core] pdl = false). A
    // plugin kernel may then be launched the same way, provided it executes griddepcontrol.wait before touching
    // global memory that another kernel reads or writes (imp/cuda/launch.cuh states the rule and launches with it).
    bool pdl = false;
};

// A range of device memory (Executor::prefetch_l2, Weight::device_ranges).
struct DeviceRange {
    const void* p = nullptr;
    size_t bytes = 0;
};

class IMP_API Executor {
public:
    virtual ~Executor() = default;
    virtual DeviceKind kind() const = 0;
    virtual std::string name() const = 0;

    // ---- memory: every buffer of a model comes from here; freed when the executor is destroyed.
    virtual void* alloc(size_t bytes, const char* tag) = 0;
    virtual void upload(void* dst, const void* src, size_t bytes) = 0;    // host -> device
    virtual void download(void* dst, const void* src, size_t bytes) = 0;  // device -> host
    virtual size_t bytes_allocated() const = 0;
    // Runs fn(begin, end) over [0, n) split into chunks of at least `grain`, on the executor's host threads
    // (used by CPU kernels; a GPU executor runs it on the calling thread).
    virtual void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) = 0;
    // Bytes this executor could still allocate (admission control before a model loads); CPU: available RAM.
    virtual uint64_t available_bytes() const = 0;
    // Waits for all work queued on the executor (no-op on the CPU).
    virtual void synchronize() {}
    // Device-to-device copy and zero fill, ordered with the ops (e.g. a recurrent-state slot copied or cleared).
    // The defaults go through host memory; device executors override them.
    virtual void copy(void* dst, const void* src, size_t bytes);
    virtual void fill_zero(void* dst, size_t bytes);
    // ---- graph capture (CUDA graphs). The ops queued between capture_begin() and capture_end() are recorded,
    // not run; replay(id) runs them again with the same pointers (so kernels must read positions, token ids,
    // lengths from device memory, never from host values baked into launch arguments).
    virtual bool supports_graphs() const { return false; }
    virtual void capture_begin() {}
    virtual int capture_end() { return -1; }
    virtual void replay(int graph_id) { (void)graph_id; }
    // CUDA handles for plugin kernels; null on executors that are not CUDA.
    virtual const CudaHandles* cuda() const { return nullptr; }
    // A scratch region shared by all Weights' matmuls (e.g. dequantized tiles for a GEMM). The engine reserves the
    // maximum of Weight::workspace_bytes over the model once, during planning; workspace() returns it afterwards.
    virtual void reserve_workspace(size_t bytes) = 0;
    virtual void* workspace() = 0;
    virtual size_t workspace_bytes() const = 0;

    // ---- common ops
    // y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w   (w may be null: no weight). x == y allowed. w is a weight: no
    // kernel of the step writes it (the CUDA kernel reads it before it waits for the kernel before it).
    virtual void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) = 0;
    // In-place RoPE on x = [n_tokens, n_heads * p.head_dim] (row stride `row_stride` floats) at `positions`.
    virtual void rope(float* x, int64_t row_stride, const int32_t* positions, int64_t n_tokens, int n_heads,
                      const RopeParams& p) = 0;
    // Writes row t of k and v ([n_tokens, n_kv_heads * head_dim], row strides given) to KV slot slot_mapping[t]
    // (device); rows whose slot is -1 are skipped.
    virtual void kv_store(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                          const int32_t* slot_mapping, int64_t n_tokens) = 0;
    // Causal GQA attention over the paged cache for every row of b: for row t of sequence s = b.token_seq[t],
    // out[t, h*hd + d] = softmax_j(q_t,h . k_j,g * scale) v_j,g over positions j in [0, b.token_pos[t]] of s (found
    // through b.block_tables row s), g = h / (n_head/n_kv_head). q = [n_tokens, n_head * head_dim] (row stride
    // q_stride); out = [n_tokens, n_head * head_dim] (contiguous). Within one step, the K/V of positions before a
    // row's own are not written by the step's kernels (only each row's own position is): the CUDA decode kernel
    // starts reading them before it waits for the kernel before it.
    virtual void attention(const float* q, int64_t q_stride, const KVCacheView& kv, float* out,
                           const AttentionParams& p, const StepBatch& b) = 0;
    // out[i] = silu(gate[i]) * up[i] over n_rows rows of width n (row strides in floats).
    virtual void swiglu(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride, float* out,
                        int64_t n_rows, int64_t n) = 0;
    // The attention prologue in one op, equal to this sequence: when q_norm (k_norm) is not null,
    // rms_norm of every head of q (k), head_dim = rope.head_dim wide, weight q_norm (k_norm), epsilon norm_eps;
    // rope of q (n_head heads) and of k (n_kv_head heads) at b.token_pos; kv_store of k and v at b.slot_mapping.
    // q = [b.n_tokens, n_head * head_dim] (row stride q_stride) is updated in place; k ([n_tokens, n_kv_head *
    // head_dim], row stride k_stride) may be left normalized and rotated in place or untouched. kv must have
    // n_kv_head heads of rope.head_dim.
    virtual void rope_kv_store(float* q, int64_t q_stride, float* k, int64_t k_stride, const float* v,
                               int64_t v_stride, const float* q_norm, const float* k_norm, float norm_eps,
                               const StepBatch& b, int n_head, int n_kv_head, const RopeParams& rope,
                               const KVCacheView& kv) = 0;
    // x[i] += y[i]
    virtual void add(float* x, const float* y, int64_t n) = 0;
    // Picks one token per row of logits (row r at logits + r * logits_stride, n_vocab wide, device) with that row's
    // parameters (rows: host array of n_rows) and writes it to out[r] (device). recent: the device buffer the rows'
    // recent tokens live in. The random draw of a row is a pure function of (p.seed, step), so the CPU and CUDA
    // executors draw the same number for the same row.
    virtual void sample(const float* logits, int64_t logits_stride, int64_t n_rows, int64_t n_vocab,
                        const SampleRow* rows, const int32_t* recent, int32_t* out) = 0;

    // ---- hints
    // Queues a prefetch of these ranges (weights: memory no kernel writes) into the device's last-level cache, to be
    // read soon by kernels queued after the next ones (a layer's weights while the layer before it runs). Changes no
    // result; executors without such a cache do nothing. It orders like any queued op (later work waits for what came
    // before it), so it is safe inside a graph capture.
    virtual void prefetch_l2(const DeviceRange* ranges, size_t n) {
        (void)ranges;
        (void)n;
    }
};

}  // namespace imp
