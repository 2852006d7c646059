// hello_layer: the op this plugin registers, "hello.scale_add": y[i] = scale * x[i] + add for i < n (x == y
// allowed). Another plugin that wants to call it includes this header and resolves it with registry.op<ScaleAdd>().
// Kernels: scale_add_cpu (the reference, hello_layer.cpp) and scale_add_cuda (scale_add.cu).
#pragma once
#include <cstdint>
#include <string>

#include "imp/executor.h"

namespace hello {

struct ScaleAdd {
    static constexpr const char* name = "hello.scale_add";
    struct Args {
        const float* x = nullptr;  // executor memory, n floats
        float* y = nullptr;        // executor memory, n floats
        int64_t n = 0;
        float scale = 1.f;
        float add = 0.f;
    };
};

void scale_add_cpu(imp::Executor& ex, const ScaleAdd::Args& a);
void scale_add_cuda(imp::Executor& ex, const ScaleAdd::Args& a);
// Whether scale_add_cuda can run on ex (a CUDA executor: it has CUDA handles).
bool scale_add_cuda_supports(const imp::Executor& ex);
// The conformance check: random x, y, scale and add from the seed, the op on both executors (in place and not),
// compared within 4e-6 + 1e-6 * |reference| (the CUDA kernel may fuse the multiply-add; |scale * x| < 16).
std::string check_scale_add(imp::Executor& cpu, imp::Executor& dev, uint64_t seed);

}  // namespace hello
