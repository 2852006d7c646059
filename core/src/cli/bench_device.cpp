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

    // Two buffers of up to 512 MiB (far beyond L2), smaller if the model leaves less free.
    uint64_t bytes = kCopyBytes;
    CUdeviceptr src = 0, dst = 0;
    while (bytes >= (32ull << 20)) {
        if (d.cuMemAlloc(&src, bytes) == 0) {
            if (d.cuMemAlloc(&dst, bytes) == 0) break;
            d.cuMemFree(src);
            src = 0;
        }
        bytes /= 2;
    }
    if (!dst) throw Error("copy bandwidth probe: cannot allocate two 32 MiB buffers on " + f.name);
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

}  // namespace

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
