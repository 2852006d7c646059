#include "kernels.h"


namespace imp::ggml {

static bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return false;
#endif
}

std::vector<const Kernels*> kernels_available() {
    std::vector<const Kernels*> v{&kernels_generic()};
    if (cpu_has_avx2()) v.push_back(&kernels_avx2());
    return v;
}

const Kernels& kernels_best() {
    static const Kernels* best = [] {
        return cpu_has_avx2() ? &kernels_avx2() : &kernels_generic();
    }();
    return *best;
}

}  // namespace imp::ggml
