// Tests: an Executor on host memory that reports any device kind, for exercising op dispatch and plugin layers
// without a GPU. alloc() hands out zeroed host memory (freed with the executor), upload/download copy and count,
// parallel_for runs serially; the common ops are not provided and throw. `handles`, when set, is what cuda()
// returns (a fake compute capability for OpSupports tests; no real stream).
#pragma once
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "imp/error.h"
#include "imp/executor.h"

namespace imp::test {

class HostExecutor : public Executor {
public:
    explicit HostExecutor(DeviceKind kind = DeviceKind::CPU, std::string name = "test-host")
        : kind_(kind), name_(std::move(name)) {}
    DeviceKind kind() const override { return kind_; }
    std::string name() const override { return name_; }
    void* alloc(size_t bytes, const char*) override {
        blocks_.push_back(std::make_unique<float[]>((bytes + 3) / 4));
        bytes_ += bytes;
        return blocks_.back().get();
    }
    void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes), ++copies; }
    void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes), ++copies; }
    size_t bytes_allocated() const override { return bytes_; }
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) override {
        for (int64_t b = 0; b < n; b += std::max<int64_t>(grain, 1))
            fn(b, std::min(n, b + std::max<int64_t>(grain, 1)));
    }
    uint64_t available_bytes() const override { return 0; }
    const CudaHandles* cuda() const override { return handles.cc > 0 ? &handles : nullptr; }
    void reserve_workspace(size_t) override { unused(); }
    void* workspace() override { return nullptr; }
    size_t workspace_bytes() const override { return 0; }
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

    CudaHandles handles;  // cc > 0: cuda() returns it
    int copies = 0;

private:
    [[noreturn]] static void unused() { throw Error("test executor: op not provided"); }
    DeviceKind kind_;
    std::string name_;
    std::vector<std::unique_ptr<float[]>> blocks_;
    size_t bytes_ = 0;
};

}  // namespace imp::test
