// The CUDA executor: one GPU, one stream, cuBLAS/cuBLASLt handles, device memory from cudaMalloc only at model
// planning time (every cudaMalloc/cudaFree is counted in cuda_alloc_stats()), the common ops as fused kernels, and
// CUDA-graph capture/replay of whatever is queued on its stream. Needs no CUDA headers to include.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "exec/cuda/attention_options.h"
#include "exec/cuda/graph_kernels.h"
#include "imp/executor.h"

namespace imp {

// Number of CUDA devices; 0 (no throw) when there is no driver or no GPU.
int cuda_device_count();

struct CudaAllocStats {
    uint64_t mallocs = 0;  // cudaMalloc calls by CUDA executors (process-wide)
    uint64_t frees = 0;    // cudaFree calls
    uint64_t bytes = 0;    // bytes currently held
};
CudaAllocStats cuda_alloc_stats();

// The MoE router kernel's shape (core/src/blocks/moe_ops.cu; [plugin.core] router_cluster, router_warps, router_grid): CTAs per
// token tile (one thread-block cluster; 16 is a non-portable size, 8 where the device cannot schedule it) and warps
// per CTA. Each warp reads whole router rows: more of both put more of the rows' loads in flight at once.
// router_wide: decode-sized calls (up to 8 tokens) run one warp per router row over as many CTAs as the rows need
// ([plugin.core] router_grid = "wide"), meeting through the executor's router scratch instead of a cluster.
struct MoeOptions {
    int router_cluster = 8;  // 8 or 16
    int router_warps = 8;    // 8 or 16
    bool router_wide = false;
};

// Kernel choices of one CUDA executor (from [plugin.core]: pdl, attention_mma, decode_attention, router_*).
struct CudaOptions {
    bool pdl = true;  // programmatic dependent launch where the device supports it (sm_90+)
    cuda_kernels::AttnOptions attention;
    MoeOptions moe;
};

class CudaExecutor final : public Executor {
public:
    // Throws imp::Error when there is no such device.
    explicit CudaExecutor(int device = 0, const CudaOptions& opt = {});
    ~CudaExecutor() override;
    CudaExecutor(const CudaExecutor&) = delete;
    CudaExecutor& operator=(const CudaExecutor&) = delete;

    DeviceKind kind() const override { return DeviceKind::CUDA; }
    std::string name() const override { return name_; }

    // cudaMalloc, zero-filled; out of memory is an imp::Error naming the tag, the size and the free memory.
    void* alloc(size_t bytes, const char* tag) override;
    void upload(void* dst, const void* src, size_t bytes) override;    // synchronous
    void download(void* dst, const void* src, size_t bytes) override;  // synchronous
    size_t bytes_allocated() const override;
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) override;
    uint64_t available_bytes() const override;  // cudaMemGetInfo free
    void synchronize() override;
    void copy(void* dst, const void* src, size_t bytes) override;  // cudaMemcpyAsync on the stream
    void fill_zero(void* dst, size_t bytes) override;              // cudaMemsetAsync on the stream

    bool supports_graphs() const override { return true; }
    void capture_begin() override;
    int capture_end() override;
    void replay(int graph_id) override;
    const CudaHandles* cuda() const override { return &handles_; }
    // `imp bench` bench.ablate: switches the kernel nodes whose kernel name contains `pattern` off (enabled false: a
    // no-op kernel that only keeps the PDL order runs on their grid instead, cuda_graphs::set_enabled) in every graph
    // captured so far, or back on; an empty pattern with enabled true turns every kernel node back on. Returns the
    // largest number of nodes switched in one graph (0: the pattern named no kernel). A graph with nodes off computes
    // garbage, but replays every other kernel as before, so its time shows what those kernels cost in the step,
    // overlap included.
    int set_graph_kernels(const std::string& pattern, bool enabled);
    // The kernel names of graph graph_id (one per kernel node; "?" where the driver cannot name one).
    std::vector<std::string> graph_kernel_names(int graph_id);
    int graph_count() const { return int(graphs_.size()); }
    // Device scratch of the wide MoE router (core/src/blocks/moe_ops.cu lays it out): allocated and zeroed with the
    // executor when MoeOptions::router_wide (else null); its kernel leaves its counters at zero again. Used by one
    // kernel at a time on the one stream.
    static constexpr size_t kRouterScratchBytes = 64 * 1024;
    void* router_scratch() { return router_scratch_; }

    void reserve_workspace(size_t bytes) override;
    void* workspace() override { return workspace_; }
    size_t workspace_bytes() const override { return workspace_bytes_; }

    void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) override;
    void prefetch_l2(const DeviceRange* ranges, size_t n) override;  // cuda_kernels::l2_prefetch
    void rope(float* x, int64_t row_stride, const int32_t* positions, int64_t n_tokens, int n_heads,
              const RopeParams& p) override;
    void kv_store(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                  const int32_t* slot_mapping, int64_t n_tokens) override;
    void attention(const float* q, int64_t q_stride, const KVCacheView& kv, float* out, const AttentionParams& p,
                   const StepBatch& b) override;
    void swiglu(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride, float* out,
                int64_t n_rows, int64_t n) override;
    // One kernel; k is left untouched (only its normalized, rotated copy goes to the cache).
    void rope_kv_store(float* q, int64_t q_stride, float* k, int64_t k_stride, const float* v, int64_t v_stride,
                       const float* q_norm, const float* k_norm, float norm_eps, const StepBatch& b, int n_head,
                       int n_kv_head, const RopeParams& rope, const KVCacheView& kv) override;
    void add(float* x, const float* y, int64_t n) override;
    // Runs of greedy rows without a repetition penalty go through one batched argmax; other rows one at a time.
    void sample(const float* logits, int64_t logits_stride, int64_t n_rows, int64_t n_vocab, const SampleRow* rows,
                const int32_t* recent, int32_t* out) override;

    // Programmatic dependent launch of the executor's kernels (launch.cuh): CudaOptions::pdl on sm_90+;
    // set_pdl(true) is ignored below sm_90. Takes effect for ops queued (or captured) afterwards.
    void set_pdl(bool on);
    bool pdl() const { return handles_.pdl; }
    // The attention kernel choices; a change takes effect for attention calls queued (or captured) afterwards.
    cuda_kernels::AttnOptions& attention_options() { return attn_; }
    // The MoE router's shape; a change takes effect for router calls queued (or captured) afterwards.
    MoeOptions& moe_options() { return moe_; }
    const MoeOptions& moe_options() const { return moe_; }

    static constexpr int64_t kMaxVocab = 262144;                     // sampler buffers
    static constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;    // cuBLAS / cuBLASLt workspace
    static constexpr size_t kAttnScratchBytes = size_t(16) << 20;    // split-KV decode partials (all rows)

private:
    void* raw_alloc(size_t bytes, const char* tag);
    void raw_free(void* p);
    void select_device() const;

    int device_ = 0;
    std::string name_;
    CudaHandles handles_{};
    cuda_kernels::AttnOptions attn_;
    MoeOptions moe_;
    mutable std::mutex mu_;
    std::vector<void*> blocks_;
    size_t allocated_ = 0;
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;
    void* attn_scratch_ = nullptr;
    void* sample_scratch_ = nullptr;
    void* router_scratch_ = nullptr;
    size_t sort_temp_bytes_ = 0;
    std::vector<void*> graphs_;      // cudaGraphExec_t
    std::vector<void*> graph_defs_;  // the cudaGraph_t each was instantiated from (kept for set_graph_kernels)
    std::vector<std::vector<cuda_graphs::KernelNode>> graph_kernels_;  // kernel nodes of each, named lazily
    const std::vector<cuda_graphs::KernelNode>& kernels_of(size_t graph);
};

}  // namespace imp
