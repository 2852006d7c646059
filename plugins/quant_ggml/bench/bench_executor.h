// quant_ggml GPU bench: a minimal CUDA imp::Executor that can free everything between shapes (free_all), which
// the core CudaExecutor deliberately cannot; otherwise (cudaMalloc'd buffers, one stream, a cuBLASLt handle
// with its workspace, the shared matmul workspace). Only what a QuantFormat uses; the common ops throw.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/executor.h"

namespace imp::ggml::test {

#define QG_TEST_CUDA(expr)                                                                                \
    do {                                                                                                  \
        const cudaError_t e_ = (expr);                                                                    \
        if (e_ != cudaSuccess)                                                                            \
            throw imp::Error(std::string(#expr) + ": " + cudaGetErrorString(e_) + " (" + __FILE__ + ":" + \
                             std::to_string(__LINE__) + ")");                                             \
    } while (0)

class CudaTestExecutor final : public Executor {
public:
    // Throws imp::Error when there is no CUDA device.
    CudaTestExecutor() {
        int n = 0;
        const cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess || n == 0)
            throw imp::Error(std::string("no CUDA device found (") + cudaGetErrorString(e) + ")");
        QG_TEST_CUDA(cudaSetDevice(0));
        cudaDeviceProp p{};
        QG_TEST_CUDA(cudaGetDeviceProperties(&p, 0));
        device_name_ = p.name;
        QG_TEST_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        if (cublasLtCreate(&lt_) != CUBLAS_STATUS_SUCCESS) throw imp::Error("cublasLtCreate failed");
        QG_TEST_CUDA(cudaMalloc(&lt_ws_, kLtWorkspace));
        h_.device = 0;
        h_.cc = p.major * 10 + p.minor;
        h_.sm_count = p.multiProcessorCount;
        h_.stream = stream_;
        h_.cublaslt = lt_;
        h_.lt_workspace = lt_ws_;
        h_.lt_workspace_bytes = kLtWorkspace;
    }
    ~CudaTestExecutor() override {
        cudaStreamSynchronize(stream_);
        for (void* b : blocks_) cudaFree(b);
        if (ws_) cudaFree(ws_);
        cudaFree(lt_ws_);
        cublasLtDestroy(lt_);
        cudaStreamDestroy(stream_);
    }

    DeviceKind kind() const override { return DeviceKind::CUDA; }
    std::string name() const override { return "cuda:0"; }
    const std::string& device_name() const { return device_name_; }
    cudaStream_t stream() const { return stream_; }

    void* alloc(size_t bytes, const char* tag) override {
        void* p = nullptr;
        const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
        if (e != cudaSuccess)
            throw imp::Error(std::string("cudaMalloc of ") + std::to_string(bytes) + " bytes for " + tag + ": " +
                             cudaGetErrorString(e));
        blocks_.push_back(p);
        allocated_ += bytes;
        return p;
    }
    void free_all() {
        QG_TEST_CUDA(cudaStreamSynchronize(stream_));
        for (void* b : blocks_) QG_TEST_CUDA(cudaFree(b));
        blocks_.clear();
        allocated_ = 0;
    }
    void upload(void* dst, const void* src, size_t bytes) override {
        QG_TEST_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
        QG_TEST_CUDA(cudaStreamSynchronize(stream_));
    }
    void download(void* dst, const void* src, size_t bytes) override {
        QG_TEST_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
        QG_TEST_CUDA(cudaStreamSynchronize(stream_));
    }
    size_t bytes_allocated() const override { return allocated_; }
    void parallel_for(int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& fn) override {
        if (n > 0) fn(0, n);
    }
    uint64_t available_bytes() const override {
        size_t f = 0, t = 0;
        cudaMemGetInfo(&f, &t);
        return f;
    }
    void synchronize() override { QG_TEST_CUDA(cudaStreamSynchronize(stream_)); }
    const CudaHandles* cuda() const override { return &h_; }
    // Launch with programmatic dependent launch (as the core executor does on sm_90+ by default): the bench's
    // --pdl flag; off by default so older runs stay comparable.
    void set_pdl(bool on) { h_.pdl = on && h_.cc >= 90; }

    void reserve_workspace(size_t bytes) override {
        if (bytes <= ws_bytes_) return;
        QG_TEST_CUDA(cudaStreamSynchronize(stream_));
        if (ws_) QG_TEST_CUDA(cudaFree(ws_));
        ws_ = nullptr;
        QG_TEST_CUDA(cudaMalloc(&ws_, bytes));
        ws_bytes_ = bytes;
    }
    void* workspace() override { return ws_; }
    size_t workspace_bytes() const override { return ws_bytes_; }

    void rms_norm(const float*, const float*, float*, int64_t, int64_t, float) override { unused(); }
    void rope(float*, int64_t, const int32_t*, int64_t, int, const RopeParams&) override { unused(); }
    void kv_store(const KVCacheView&, const float*, int64_t, const float*, int64_t, const int32_t*, int64_t) override {
        unused();
    }
    void attention(const float*, int64_t, const KVCacheView&, float*, const AttentionParams&,
                   const StepBatch&) override { unused(); }
    void swiglu(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t) override { unused(); }
    void rope_kv_store(float*, int64_t, float*, int64_t, const float*, int64_t, const float*, const float*, float,
                       const StepBatch&, int, int, const RopeParams&, const KVCacheView&) override {
        unused();
    }
    void add(float*, const float*, int64_t) override { unused(); }
    void sample(const float*, int64_t, int64_t, int64_t, const SampleRow*, const int32_t*, int32_t*) override {
        unused();
    }

private:
    [[noreturn]] static void unused() { throw std::logic_error("CudaTestExecutor: op not used by quant_ggml"); }
    static constexpr size_t kLtWorkspace = size_t(32) << 20;

    std::string device_name_;
    cudaStream_t stream_ = nullptr;
    cublasLtHandle_t lt_ = nullptr;
    void* lt_ws_ = nullptr;
    CudaHandles h_{};
    std::vector<void*> blocks_;
    size_t allocated_ = 0;
    void* ws_ = nullptr;
    size_t ws_bytes_ = 0;
};

}  // namespace imp::ggml::test
