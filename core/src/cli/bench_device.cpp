#include "cli/bench_device.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "imp/error.h"

namespace imp::cli {

namespace {

constexpr uint64_t kCopyBytes = 512ull << 20;  // per buffer
constexpr int kCopyWarmup = 2, kCopyReps = 15;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string cpu_model_name() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            const size_t c = line.find(':');
            if (c != std::string::npos) {
                size_t b = line.find_first_not_of(" \t", c + 1);
                return b == std::string::npos ? "cpu" : line.substr(b);
            }
        }
    }
    return "cpu";
}

// ---- CUDA driver API, resolved from libcuda.so.1 at run time.
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = void*;
using CUevent = void*;
using CUstream = void*;

struct Driver {
    void* lib = nullptr;
    CUresult (*cuInit)(unsigned) = nullptr;
    CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
    CUresult (*cuDeviceGetName)(char*, int, CUdevice) = nullptr;
    CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice) = nullptr;
    CUresult (*cuDriverGetVersion)(int*) = nullptr;
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
    CUresult (*cuDevicePrimaryCtxRelease)(CUdevice) = nullptr;
    CUresult (*cuCtxPushCurrent)(CUcontext) = nullptr;
    CUresult (*cuCtxPopCurrent)(CUcontext*) = nullptr;
    CUresult (*cuCtxSynchronize)() = nullptr;
    CUresult (*cuMemGetInfo)(size_t*, size_t*) = nullptr;
    CUresult (*cuMemAlloc)(CUdeviceptr*, size_t) = nullptr;
    CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
    CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t) = nullptr;
    CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream) = nullptr;
    CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void*, size_t) = nullptr;
    CUresult (*cuEventCreate)(CUevent*, unsigned) = nullptr;
    CUresult (*cuEventDestroy)(CUevent) = nullptr;
    CUresult (*cuEventRecord)(CUevent, CUstream) = nullptr;
    CUresult (*cuEventSynchronize)(CUevent) = nullptr;
    CUresult (*cuEventElapsedTime)(float*, CUevent, CUevent) = nullptr;

    template <class F>
    void sym(F& f, std::initializer_list<const char*> names) {
        for (const char* n : names)
            if (void* p = dlsym(lib, n)) {
                f = reinterpret_cast<F>(p);
                return;
            }
        throw Error(std::string("copy bandwidth probe: libcuda.so.1 has no ") + *names.begin());
    }
    Driver() {
        lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!lib) throw Error(std::string("copy bandwidth probe: cannot load libcuda.so.1: ") + dlerror());
        sym(cuInit, {"cuInit"});
        sym(cuDeviceGet, {"cuDeviceGet"});
        sym(cuDeviceGetName, {"cuDeviceGetName"});
        sym(cuDeviceGetAttribute, {"cuDeviceGetAttribute"});
        sym(cuDriverGetVersion, {"cuDriverGetVersion"});
        sym(cuDevicePrimaryCtxRetain, {"cuDevicePrimaryCtxRetain"});
        sym(cuDevicePrimaryCtxRelease, {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"});
        sym(cuCtxPushCurrent, {"cuCtxPushCurrent_v2", "cuCtxPushCurrent"});
        sym(cuCtxPopCurrent, {"cuCtxPopCurrent_v2", "cuCtxPopCurrent"});
        sym(cuCtxSynchronize, {"cuCtxSynchronize"});
        sym(cuMemGetInfo, {"cuMemGetInfo_v2", "cuMemGetInfo"});
        sym(cuMemAlloc, {"cuMemAlloc_v2", "cuMemAlloc"});
        sym(cuMemFree, {"cuMemFree_v2", "cuMemFree"});
        sym(cuMemsetD8, {"cuMemsetD8_v2", "cuMemsetD8"});
        sym(cuMemcpyDtoDAsync, {"cuMemcpyDtoDAsync_v2", "cuMemcpyDtoDAsync"});
        sym(cuMemcpyHtoD, {"cuMemcpyHtoD_v2", "cuMemcpyHtoD"});
        sym(cuEventCreate, {"cuEventCreate"});
        sym(cuEventDestroy, {"cuEventDestroy_v2", "cuEventDestroy"});
        sym(cuEventRecord, {"cuEventRecord"});
        sym(cuEventSynchronize, {"cuEventSynchronize"});
        sym(cuEventElapsedTime, {"cuEventElapsedTime_v2", "cuEventElapsedTime"});
    }
    ~Driver() {
        if (lib) dlclose(lib);
    }
};

void check(CUresult r, const char* what) {
    if (r != 0)
        throw Error(std::string("copy bandwidth probe: ") + what + " failed (CUresult " + std::to_string(r) + ")");
}

// The primary context of one device, current on this thread for the scope.
struct CtxScope {
    Driver& d;
    CUdevice dev;
    CUcontext ctx = nullptr;
    CtxScope(Driver& drv, int ordinal) : d(drv), dev(0) {
        check(d.cuInit(0), "cuInit");
        check(d.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
        check(d.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
        check(d.cuCtxPushCurrent(ctx), "cuCtxPushCurrent");
    }
    ~CtxScope() {
        CUcontext c;
        d.cuCtxPopCurrent(&c);
        d.cuDevicePrimaryCtxRelease(dev);
    }
};

void probe_cuda(Executor& ex, DeviceFacts& f) {
    Driver d;
    const int ordinal = ex.cuda() ? ex.cuda()->device : 0;
    CtxScope scope(d, ordinal);
    char name[256] = {0};
    check(d.cuDeviceGetName(name, int(sizeof name) - 1, scope.dev), "cuDeviceGetName");
    f.name = name;
    int ver = 0;
    check(d.cuDriverGetVersion(&ver), "cuDriverGetVersion");
    f.cuda_driver = std::to_string(ver / 1000) + "." + std::to_string(ver % 1000 / 10);

    size_t free_b = 0, total_b = 0;
    check(d.cuMemGetInfo(&free_b, &total_b), "cuMemGetInfo");
    f.device_total_bytes = total_b;
    f.device_used_bytes = total_b - free_b;

    constexpr int kAttrL2CacheSize = 38;  // CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE
    int l2 = 0;
    check(d.cuDeviceGetAttribute(&l2, kAttrL2CacheSize, scope.dev), "cuDeviceGetAttribute(L2 cache size)");
    f.l2_cache_bytes = uint64_t(l2 > 0 ? l2 : 0);
    // Two buffers of up to 512 MiB, smaller if the model leaves less free, but never below 4x L2: a copy that fits
    // in L2 measures the cache, not the memory, and would inflate every decode efficiency.
    const uint64_t min_bytes = std::max<uint64_t>(4 * f.l2_cache_bytes, 32ull << 20);
    uint64_t bytes = std::max(kCopyBytes, min_bytes);
    CUdeviceptr src = 0, dst = 0;
    while (bytes >= min_bytes) {
        if (d.cuMemAlloc(&src, bytes) == 0) {
            if (d.cuMemAlloc(&dst, bytes) == 0) break;
            d.cuMemFree(src);
            src = 0;
        }
        if (bytes == min_bytes) break;
        bytes = std::max(bytes / 2, min_bytes);
    }
    if (!dst)
        throw Error("copy bandwidth probe: cannot allocate two buffers of " + std::to_string(min_bytes >> 20) +
                    " MiB (4x the " + std::to_string(f.l2_cache_bytes >> 20) + " MiB L2 cache) on " + f.name + " (" +
                    std::to_string(free_b >> 20) + " MiB free before the probe)");
    struct Free {
        Driver& d;
        CUdeviceptr a, b;
        ~Free() {
            d.cuMemFree(a);
            d.cuMemFree(b);
        }
    } free_bufs{d, src, dst};
    check(d.cuMemsetD8(src, 0x5A, bytes), "cuMemsetD8");
    check(d.cuMemsetD8(dst, 0xA5, bytes), "cuMemsetD8");
    CUevent e0 = nullptr, e1 = nullptr;
    check(d.cuEventCreate(&e0, 0), "cuEventCreate");
    check(d.cuEventCreate(&e1, 0), "cuEventCreate");
    struct Events {
        Driver& d;
        CUevent a, b;
        ~Events() {
            d.cuEventDestroy(a);
            d.cuEventDestroy(b);
        }
    } events{d, e0, e1};
    check(d.cuCtxSynchronize(), "cuCtxSynchronize");
    std::vector<double> secs;
    for (int i = 0; i < kCopyWarmup + kCopyReps; ++i) {
        check(d.cuEventRecord(e0, nullptr), "cuEventRecord");
        check(d.cuMemcpyDtoDAsync(dst, src, bytes, nullptr), "cuMemcpyDtoDAsync");
        check(d.cuEventRecord(e1, nullptr), "cuEventRecord");
        check(d.cuEventSynchronize(e1), "cuEventSynchronize");
        float ms = 0;
        check(d.cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
        if (i >= kCopyWarmup) secs.push_back(double(ms) * 1e-3);
    }
    f.copy_buffer_bytes = bytes;
    f.copy_bytes_per_s = 2.0 * double(bytes) / median(secs);
}

void probe_cpu(Executor& ex, DeviceFacts& f) {
    f.name = cpu_model_name();
    const uint64_t bytes = kCopyBytes;
    std::unique_ptr<uint8_t[]> src(new uint8_t[bytes]), dst(new uint8_t[bytes]);
    constexpr int64_t kPiece = 1 << 20;
    const int64_t pieces = int64_t(bytes / kPiece);
    // Touch both buffers (non-zero data, pages faulted in) with the same threads that will copy.
    ex.parallel_for(pieces, 8, [&](int64_t b, int64_t e) {
        std::memset(src.get() + b * kPiece, 0x5A, size_t((e - b) * kPiece));
        std::memset(dst.get() + b * kPiece, 0xA5, size_t((e - b) * kPiece));
    });
    std::vector<double> secs;
    for (int i = 0; i < 1 + 5; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        ex.parallel_for(pieces, 8, [&](int64_t b, int64_t e) {
            std::memcpy(dst.get() + b * kPiece, src.get() + b * kPiece, size_t((e - b) * kPiece));
        });
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (i >= 1) secs.push_back(s);
    }
    f.copy_buffer_bytes = bytes;
    f.copy_bytes_per_s = 2.0 * double(bytes) / median(secs);
}

// ---- cuBLAS, resolved at run time: from the process (imp_core links it when built with CUDA), else loaded.
constexpr int kGemmWarmup = 3, kGemmBatches = 15, kGemmPerBatch = 10;

using GemmExFn = int (*)(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* A,
                         int Atype, int lda, const void* B, int Btype, int ldb, const void* beta, void* C, int Ctype,
                         int ldc, int computeType, int algo);
constexpr int kOpN = 0, kOpT = 1, kR16BF = 14, kCompute32F = 68, kGemmDefault = -1;

GemmExFn find_gemm_ex() {
    if (void* p = dlsym(RTLD_DEFAULT, "cublasGemmEx")) return reinterpret_cast<GemmExFn>(p);
    for (const char* lib : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) {
        // Kept loaded for the life of the process (the executor's handle came from the same library).
        if (void* h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL))
            if (void* p = dlsym(h, "cublasGemmEx")) return reinterpret_cast<GemmExFn>(p);
    }
    throw Error("BF16 GEMM probe: cublasGemmEx not found (neither in the process nor in libcublas.so.13/.12)");
}

// Fills a device buffer of bf16 values with pseudo-random numbers in (-1, 1) (not zeros: the rate of a GEMM of
// zeros is not the rate of a GEMM of data).
void fill_bf16(Driver& d, CUdeviceptr dst, int64_t count, uint64_t seed) {
    constexpr int64_t kBlock = int64_t(4) << 20;  // elements per upload
    std::vector<uint16_t> block(size_t(std::min(count, kBlock)));
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& v : block) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        float f = float(double(x >> 11) / double(1ull << 53) * 2.0 - 1.0);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        v = uint16_t(bits >> 16);
    }
    for (int64_t off = 0; off < count; off += int64_t(block.size())) {
        const int64_t n = std::min<int64_t>(int64_t(block.size()), count - off);
        check(d.cuMemcpyHtoD(dst + CUdeviceptr(off) * 2, block.data(), size_t(n) * 2), "cuMemcpyHtoD");
    }
}

void probe_gemm_cuda(Executor& ex, GemmFacts& g) {
    const CudaHandles* h = ex.cuda();
    if (!h || !h->cublas) throw Error("BF16 GEMM probe: the CUDA executor has no cuBLAS handle");
    const GemmExFn gemm = find_gemm_ex();
    Driver d;
    CtxScope scope(d, h->device);
    const size_t a_bytes = size_t(g.m * g.k) * 2, b_bytes = size_t(g.k * g.n) * 2, c_bytes = size_t(g.m * g.n) * 2;
    CUdeviceptr a = 0, b = 0, c = 0;
    struct Free {
        Driver& d;
        CUdeviceptr* p[3];
        ~Free() {
            for (auto* x : p)
                if (*x) d.cuMemFree(*x);
        }
    } free_bufs{d, {&a, &b, &c}};
    check(d.cuMemAlloc(&a, a_bytes), "cuMemAlloc (GEMM weights)");
    check(d.cuMemAlloc(&b, b_bytes), "cuMemAlloc (GEMM activations)");
    check(d.cuMemAlloc(&c, c_bytes), "cuMemAlloc (GEMM output)");
    fill_bf16(d, a, g.m * g.k, 1);
    fill_bf16(d, b, g.k * g.n, 2);
    check(d.cuMemsetD8(c, 0, c_bytes), "cuMemsetD8");
    CUevent e0 = nullptr, e1 = nullptr;
    check(d.cuEventCreate(&e0, 0), "cuEventCreate");
    check(d.cuEventCreate(&e1, 0), "cuEventCreate");
    struct Events {
        Driver& d;
        CUevent a, b;
        ~Events() {
            d.cuEventDestroy(a);
            d.cuEventDestroy(b);
        }
    } events{d, e0, e1};
    check(d.cuCtxSynchronize(), "cuCtxSynchronize");
    const float alpha = 1.f, beta = 0.f;
    // Column-major cuBLAS view of row-major data: W (m rows of k) is a k x m matrix, transposed; X (n tokens of k)
    // is k x n; C (n tokens of m) is m x n. The "TN" layout of a linear layer.
    auto run = [&] {
        const int st = gemm(h->cublas, kOpT, kOpN, int(g.m), int(g.n), int(g.k), &alpha, reinterpret_cast<void*>(a),
                            kR16BF, int(g.k), reinterpret_cast<void*>(b), kR16BF, int(g.k), &beta,
                            reinterpret_cast<void*>(c), kR16BF, int(g.m), kCompute32F, kGemmDefault);
        if (st != 0) throw Error("BF16 GEMM probe: cublasGemmEx failed (cublasStatus " + std::to_string(st) + ")");
    };
    CUstream stream = h->stream;
    for (int i = 0; i < kGemmWarmup; ++i) run();
    std::vector<double> secs;
    for (int i = 0; i < kGemmBatches; ++i) {
        check(d.cuEventRecord(e0, stream), "cuEventRecord");
        for (int j = 0; j < kGemmPerBatch; ++j) run();
        check(d.cuEventRecord(e1, stream), "cuEventRecord");
        check(d.cuEventSynchronize(e1), "cuEventSynchronize");
        float ms = 0;
        check(d.cuEventElapsedTime(&ms, e0, e1), "cuEventElapsedTime");
        secs.push_back(double(ms) * 1e-3 / kGemmPerBatch);
    }
    g.flops_per_s = 2.0 * double(g.m) * double(g.n) * double(g.k) / median(secs);
}

}  // namespace

std::string GemmFacts::shape() const {
    if (!measured()) return "";
    return std::to_string(n) + "x" + std::to_string(k) + "x" + std::to_string(m);
}

GemmFacts probe_gemm_bf16(Executor& ex, int64_t m, int64_t n, int64_t k) {
    GemmFacts g;
    g.m = m;
    g.n = n;
    g.k = k;
    if (ex.kind() != DeviceKind::CUDA || m <= 0 || n <= 0 || k <= 0) return g;
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) throw Error("BF16 GEMM probe: shape exceeds int32");
    ex.synchronize();
    probe_gemm_cuda(ex, g);
    ex.synchronize();
    return g;
}

DeviceFacts probe_device(Executor& ex) {
    DeviceFacts f;
    ex.synchronize();
    if (ex.kind() == DeviceKind::CUDA) probe_cuda(ex, f);
    else probe_cpu(ex, f);
    return f;
}

uint64_t device_used_bytes(Executor& ex) {
    if (ex.kind() != DeviceKind::CUDA) return 0;
    Driver d;
    CtxScope scope(d, ex.cuda() ? ex.cuda()->device : 0);
    size_t free_b = 0, total_b = 0;
    check(d.cuMemGetInfo(&free_b, &total_b), "cuMemGetInfo");
    return total_b - free_b;
}

}  // namespace imp::cli
