#include "exec/cuda/cuda_executor.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "exec/cuda/cuda_check.h"
#include "exec/cuda/kernels.h"
#include "exec/cuda/launch.cuh"
#include "imp/error.h"
#include "runtime/sampler.h"

namespace imp {

namespace {

std::atomic<uint64_t> g_mallocs{0}, g_frees{0}, g_bytes{0};

cudaStream_t stream_of(const CudaHandles& h) { return static_cast<cudaStream_t>(h.stream); }
cuda_kernels::Queue queue_of(const CudaHandles& h) { return {stream_of(h), h.pdl}; }

constexpr size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// Layout of the sampler's buffers inside one allocation.
struct SampleLayout {
    size_t keys_in, keys_out, ids_in, ids_out, block_vals, block_ids, parts, cand_keys, cand_ids, top_keys, top_ids,
        temp, total;
};
SampleLayout sample_layout(int64_t max_vocab, size_t temp_bytes) {
    SampleLayout l{};
    const size_t f = align256(size_t(max_vocab) * 4);
    const size_t b = align256(size_t(cuda_kernels::kArgmaxBlocks * cuda_kernels::kSampleBatchRows) * 4);
    l.keys_in = 0;
    l.keys_out = l.keys_in + f;
    l.ids_in = l.keys_out + f;
    l.ids_out = l.ids_in + f;
    l.block_vals = l.ids_out + f;
    l.block_ids = l.block_vals + b;
    l.parts = l.block_ids + b;
    const size_t cand = align256(size_t(cuda_kernels::kTopKBatchRows) * cuda_kernels::kArgmaxBlocks *
                                 cuda_kernels::kFastTopK * 4);
    const size_t top = align256(size_t(cuda_kernels::kTopKBatchRows) * cuda_kernels::kFastTopK * 4);
    l.cand_keys = l.parts + align256(size_t(cuda_kernels::kArgmaxBlocks) * 2 * sizeof(double));
    l.cand_ids = l.cand_keys + cand;
    l.top_keys = l.cand_ids + cand;
    l.top_ids = l.top_keys + top;
    l.temp = l.top_ids + top;
    l.total = l.temp + align256(temp_bytes);
    return l;
}

}  // namespace

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

CudaAllocStats cuda_alloc_stats() { return {g_mallocs.load(), g_frees.load(), g_bytes.load()}; }

CudaExecutor::CudaExecutor(int device, const CudaOptions& opt)
    : device_(device), attn_(opt.attention), moe_(opt.moe) {
    for (const auto& [what, v] : {std::pair<const char*, int>{"router_cluster", moe_.router_cluster},
                                  std::pair<const char*, int>{"router_warps", moe_.router_warps}})
        if (v != 8 && v != 16)
            throw Error(std::string("cuda: MoE ") + what + " " + std::to_string(v) + " is not 8 or 16");
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        throw Error(std::string("cuda: no CUDA device found (cudaGetDeviceCount: ") +
                    (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
    }
    if (device < 0 || device >= count)
        throw Error("cuda: device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                    " device(s) found)");
    select_device();
    cudaDeviceProp prop{};
    IMP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    handles_.device = device;
    handles_.cc = prop.major * 10 + prop.minor;
    handles_.sm_count = prop.multiProcessorCount;
    handles_.pdl = opt.pdl && handles_.cc >= 90;
    char buf[320];
    std::snprintf(buf, sizeof buf, "cuda:%d (%s, sm_%d%d, %d SMs, %.1f GiB)", device, prop.name, prop.major,
                  prop.minor, prop.multiProcessorCount, double(prop.totalGlobalMem) / double(1ull << 30));
    name_ = buf;

    cudaStream_t stream = nullptr;
    IMP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    handles_.stream = stream;
    cublasHandle_t blas = nullptr;
    IMP_CUBLAS_CHECK(cublasCreate(&blas));
    handles_.cublas = blas;
    IMP_CUBLAS_CHECK(cublasSetStream(blas, stream));
    cublasLtHandle_t lt = nullptr;
    IMP_CUBLAS_CHECK(cublasLtCreate(&lt));
    handles_.cublaslt = lt;
    // One workspace for cuBLAS and cuBLASLt (they run in order on the one stream); cuBLAS then allocates nothing
    // itself, which graph capture requires.
    handles_.lt_workspace = raw_alloc(kLtWorkspaceBytes, "cuBLAS/cuBLASLt workspace");
    handles_.lt_workspace_bytes = kLtWorkspaceBytes;
    IMP_CUBLAS_CHECK(cublasSetWorkspace(blas, handles_.lt_workspace, kLtWorkspaceBytes));
    attn_scratch_ = raw_alloc(kAttnScratchBytes, "attention decode scratch");
    sort_temp_bytes_ = cuda_kernels::sample_sort_temp_bytes(kMaxVocab);
    sample_scratch_ = raw_alloc(sample_layout(kMaxVocab, sort_temp_bytes_).total, "sampler scratch");
    // Only the wide router uses it, but moe_options().router_wide may be turned on after construction (64 KiB).
    router_scratch_ = raw_alloc(kRouterScratchBytes, "MoE router scratch");
    IMP_CUDA_CHECK(cudaMemsetAsync(router_scratch_, 0, kRouterScratchBytes, stream));  // before synchronize()
    cuda_kernels::attention_init();
    synchronize();
}

CudaExecutor::~CudaExecutor() {
    (void)cudaSetDevice(device_);
    (void)cudaStreamSynchronize(stream_of(handles_));
    for (void* g : graphs_) (void)cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g));
    for (void* g : graph_defs_) (void)cudaGraphDestroy(static_cast<cudaGraph_t>(g));
    if (handles_.cublaslt) (void)cublasLtDestroy(static_cast<cublasLtHandle_t>(handles_.cublaslt));
    if (handles_.cublas) (void)cublasDestroy(static_cast<cublasHandle_t>(handles_.cublas));
    for (void* p : blocks_) {
        if (cudaFree(p) == cudaSuccess) g_frees.fetch_add(1);
    }
    g_bytes.fetch_sub(std::min<uint64_t>(g_bytes.load(), allocated_));
    if (handles_.stream) (void)cudaStreamDestroy(stream_of(handles_));
}

void CudaExecutor::select_device() const { IMP_CUDA_CHECK(cudaSetDevice(device_)); }

void* CudaExecutor::raw_alloc(size_t bytes, const char* tag) {
    select_device();
    const size_t rounded = align256(std::max<size_t>(bytes, 1));
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, rounded);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        (void)cudaMemGetInfo(&free_b, &total_b);
        throw Error("cuda:" + std::to_string(device_) + ": out of device memory allocating " + std::to_string(bytes) +
                    " bytes for '" + (tag ? tag : "?") + "' (" + std::to_string(free_b) + " of " +
                    std::to_string(total_b) + " bytes free)");
    }
    if (e != cudaSuccess) ::imp::cuda::throw_cuda(e, "cudaMalloc", __FILE__, __LINE__);
    g_mallocs.fetch_add(1);
    g_bytes.fetch_add(rounded);
    std::lock_guard<std::mutex> lk(mu_);
    blocks_.push_back(p);
    allocated_ += rounded;
    return p;
}

void CudaExecutor::raw_free(void* p) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = std::find(blocks_.begin(), blocks_.end(), p);
    if (it == blocks_.end()) return;
    blocks_.erase(it);
    IMP_CUDA_CHECK(cudaFree(p));
    g_frees.fetch_add(1);
    // The size is not tracked per block; only the workspace is ever freed early, and it updates the totals itself.
}

void* CudaExecutor::alloc(size_t bytes, const char* tag) {
    void* p = raw_alloc(bytes, tag);
    IMP_CUDA_CHECK(cudaMemsetAsync(p, 0, align256(std::max<size_t>(bytes, 1)), stream_of(handles_)));
    return p;
}

void CudaExecutor::upload(void* dst, const void* src, size_t bytes) {
    if (!bytes) return;
    select_device();
    IMP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(handles_)));
    IMP_CUDA_CHECK(cudaStreamSynchronize(stream_of(handles_)));
}

void CudaExecutor::download(void* dst, const void* src, size_t bytes) {
    if (!bytes) return;
    select_device();
    IMP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(handles_)));
    IMP_CUDA_CHECK(cudaStreamSynchronize(stream_of(handles_)));
}

size_t CudaExecutor::bytes_allocated() const {
    std::lock_guard<std::mutex> lk(mu_);
    return allocated_;
}

void CudaExecutor::parallel_for(int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& fn) {
    if (n > 0) fn(0, n);
}

uint64_t CudaExecutor::available_bytes() const {
    select_device();
    size_t free_b = 0, total_b = 0;
    IMP_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return free_b;
}

void CudaExecutor::synchronize() {
    select_device();
    IMP_CUDA_CHECK(cudaStreamSynchronize(stream_of(handles_)));
}

void CudaExecutor::copy(void* dst, const void* src, size_t bytes) {
    if (!bytes) return;
    select_device();
    IMP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(handles_)));
}

void CudaExecutor::fill_zero(void* dst, size_t bytes) {
    if (!bytes) return;
    select_device();
    IMP_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_of(handles_)));
}

void CudaExecutor::capture_begin() {
    select_device();
    IMP_CUDA_CHECK(cudaStreamBeginCapture(stream_of(handles_), cudaStreamCaptureModeThreadLocal));
}

int CudaExecutor::capture_end() {
    cudaGraph_t graph = nullptr;
    if (const cudaError_t end = cudaStreamEndCapture(stream_of(handles_), &graph); end != cudaSuccess) {
        // The capture is over either way (an op failed inside it, or the caller ends it after an error): the error
        // must not stay as the thread's last one, or the next launch check would report it against its kernel.
        (void)cudaGetLastError();
        ::imp::cuda::throw_cuda(end, "cudaStreamEndCapture", __FILE__, __LINE__);
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    if (e != cudaSuccess) {
        (void)cudaGraphDestroy(graph);
        ::imp::cuda::throw_cuda(e, "cudaGraphInstantiate", __FILE__, __LINE__);
    }
    graphs_.push_back(exec);
    graph_defs_.push_back(graph);  // its nodes name the exec's nodes for set_graph_kernels
    graph_kernels_.emplace_back();
    return int(graphs_.size()) - 1;
}

const std::vector<cuda_graphs::KernelNode>& CudaExecutor::kernels_of(size_t g) {
    auto& k = graph_kernels_[g];
    if (k.empty()) k = cuda_graphs::kernel_nodes(graph_defs_[g]);
    return k;
}

int CudaExecutor::set_graph_kernels(const std::string& pattern, bool enabled) {
    select_device();
    synchronize();  // no replay in flight while its nodes change
    int most = 0;
    for (size_t g = 0; g < graphs_.size(); ++g)
        most = std::max(most, cuda_graphs::set_enabled(graphs_[g], kernels_of(g), pattern, enabled));
    return most;
}

std::vector<std::string> CudaExecutor::graph_kernel_names(int graph_id) {
    if (graph_id < 0 || graph_id >= int(graphs_.size()))
        throw Error("cuda: graph " + std::to_string(graph_id) + " of " + std::to_string(graphs_.size()) +
                    " captured");
    std::vector<std::string> out;
    for (const auto& kn : kernels_of(size_t(graph_id))) out.push_back(kn.name);
    return out;
}

void CudaExecutor::replay(int graph_id) {
    if (graph_id < 0 || graph_id >= int(graphs_.size()))
        throw Error("cuda: replay of graph " + std::to_string(graph_id) + ", but " + std::to_string(graphs_.size()) +
                    " graph(s) were captured");
    select_device();
    IMP_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graphs_[size_t(graph_id)]), stream_of(handles_)));
}

void CudaExecutor::reserve_workspace(size_t bytes) {
    if (bytes <= workspace_bytes_) return;
    synchronize();
    // A captured graph's kernels hold the workspace's address: with graphs captured, the old block is kept (freed
    // with the executor) rather than freed, so their replays never touch freed memory.
    if (workspace_ && graphs_.empty()) {
        raw_free(workspace_);
        const size_t old = align256(workspace_bytes_);
        g_bytes.fetch_sub(std::min<uint64_t>(g_bytes.load(), old));
        std::lock_guard<std::mutex> lk(mu_);
        allocated_ -= std::min(allocated_, old);
    }
    workspace_ = nullptr;
    workspace_bytes_ = 0;
    workspace_ = raw_alloc(bytes, "matmul workspace");
    workspace_bytes_ = bytes;
    // Zero-filled like every allocation (once per growth): deterministic content, and compute-sanitizer initcheck,
    // which does not see cuBLASLt's (TMA) writes, reads what the GEMMs leave here as initialized.
    IMP_CUDA_CHECK(cudaMemsetAsync(workspace_, 0, align256(bytes), stream_of(handles_)));
}

void CudaExecutor::rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
    cuda_kernels::rms_norm(x, w, y, rows, n, eps, queue_of(handles_));
}

void CudaExecutor::prefetch_l2(const DeviceRange* ranges, size_t n) {
    cuda_kernels::l2_prefetch(ranges, n, handles_.sm_count, queue_of(handles_));
}

void CudaExecutor::rope(float* x, int64_t row_stride, const int32_t* positions, int64_t n_tokens, int n_heads,
                        const RopeParams& p) {
    if (p.n_rot <= 0 || p.n_rot % 2 != 0 || p.n_rot > p.head_dim)
        throw Error("cuda rope: n_rot " + std::to_string(p.n_rot) + " must be even and in (0, head_dim " +
                    std::to_string(p.head_dim) + "]");
    cuda_kernels::rope(x, row_stride, positions, n_tokens, n_heads, p, queue_of(handles_));
}

void CudaExecutor::kv_store(const KVCacheView& kv, const float* k, int64_t k_stride, const float* v,
                            int64_t v_stride, const int32_t* slot_mapping, int64_t n_tokens) {
    cuda_kernels::kv_store(kv, k, k_stride, v, v_stride, slot_mapping, n_tokens, queue_of(handles_));
}

void CudaExecutor::attention(const float* q, int64_t q_stride, const KVCacheView& kv, float* out,
                             const AttentionParams& p, const StepBatch& b) {
    const cuda_kernels::AttnScratch sc{static_cast<float*>(attn_scratch_), kAttnScratchBytes / sizeof(float)};
    cuda_kernels::attention(q, q_stride, kv, out, p, b, sc, attn_, handles_.sm_count, queue_of(handles_));
}

void CudaExecutor::rope_kv_store(float* q, int64_t q_stride, float* k, int64_t k_stride, const float* v,
                                 int64_t v_stride, const float* q_norm, const float* k_norm, float norm_eps,
                                 const StepBatch& b, int n_head, int n_kv_head, const RopeParams& rope,
                                 const KVCacheView& kv) {
    cuda_kernels::rope_kv_store(q, q_stride, k, k_stride, v, v_stride, q_norm, k_norm, norm_eps, b, n_head, n_kv_head,
                                rope, kv, queue_of(handles_));
}

void CudaExecutor::set_pdl(bool on) { handles_.pdl = on && handles_.cc >= 90; }

void CudaExecutor::swiglu(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride, float* out,
                          int64_t n_rows, int64_t n) {
    cuda_kernels::swiglu(gate, gate_stride, up, up_stride, out, n_rows, n, queue_of(handles_));
}

void CudaExecutor::add(float* x, const float* y, int64_t n) { cuda_kernels::add(x, y, n, queue_of(handles_)); }

void CudaExecutor::sample(const float* logits, int64_t logits_stride, int64_t n_rows, int64_t n_vocab,
                          const SampleRow* rows, const int32_t* recent, int32_t* out) {
    if (n_rows <= 0) return;
    if (!rows) throw Error("cuda sample: " + std::to_string(n_rows) + " rows without their parameters");
    const SampleLayout l = sample_layout(kMaxVocab, sort_temp_bytes_);
    char* base = static_cast<char*>(sample_scratch_);
    cuda_kernels::SampleScratch sc;
    sc.keys_in = reinterpret_cast<float*>(base + l.keys_in);
    sc.keys_out = reinterpret_cast<float*>(base + l.keys_out);
    sc.ids_in = reinterpret_cast<int32_t*>(base + l.ids_in);
    sc.ids_out = reinterpret_cast<int32_t*>(base + l.ids_out);
    sc.block_vals = reinterpret_cast<float*>(base + l.block_vals);
    sc.block_ids = reinterpret_cast<int32_t*>(base + l.block_ids);
    sc.parts = reinterpret_cast<double*>(base + l.parts);
    sc.cand_keys = reinterpret_cast<float*>(base + l.cand_keys);
    sc.cand_ids = reinterpret_cast<int32_t*>(base + l.cand_ids);
    sc.top_keys = reinterpret_cast<float*>(base + l.top_keys);
    sc.top_ids = reinterpret_cast<int32_t*>(base + l.top_ids);
    sc.sort_temp = base + l.temp;
    sc.sort_temp_bytes = sort_temp_bytes_;
    sc.max_vocab = kMaxVocab;
    const cuda_kernels::Queue s = queue_of(handles_);
    // Rows drawing from a small top-k, and greedy rows with a penalty: batched (two launches per 64 rows).
    std::vector<cuda_kernels::TopKRow> topk;
    auto penalized = [&](const SampleRow& r) { return r.p.repeat_penalty != 1.f && r.n_recent > 0 && recent; };
    auto plain_argmax = [&](const SampleRow& r) {
        return r.p.temperature <= 0.f && (r.p.repeat_penalty == 1.f || r.n_recent <= 0 || !recent);
    };
    for (int64_t r = 0; r < n_rows;) {
        const float* lr = logits + r * logits_stride;
        if (plain_argmax(rows[r])) {
            int64_t e = r + 1;
            while (e < n_rows && plain_argmax(rows[e])) ++e;
            if (n_vocab > kMaxVocab)
                throw Error("cuda sample: vocabulary of " + std::to_string(n_vocab) +
                            " exceeds the sampler's maximum " + std::to_string(kMaxVocab));
            cuda_kernels::sample_argmax_rows(lr, logits_stride, e - r, n_vocab, out + r, sc, s);
            r = e;
            continue;
        }
        const SampleRow& row = rows[r];
        const double u = row.p.temperature > 0.f ? sample_uniform(row.p.seed, row.step) : 0.0;
        const int32_t* rec = recent ? recent + row.recent_offset : nullptr;
        if (cuda_kernels::topk_row_fits(row.p, penalized(row), n_vocab, kMaxVocab))
            topk.push_back({r, row.p, u, rec, recent ? row.n_recent : 0});
        else
            cuda_kernels::sample(lr, n_vocab, row.p, u, rec, row.n_recent, out + r, sc, s);
        ++r;
    }
    if (!topk.empty())
        cuda_kernels::sample_topk_rows(logits, logits_stride, n_vocab, topk.data(), int64_t(topk.size()), out, sc, s);
}

}  // namespace imp
