// AVX2 + FMA + F16C build of the kernels (CMake adds the -m flags on x86-64); chosen at run time by
// kernels_dispatch.cpp only when the CPU has all three.
#define IMP_GGML_KERNELS_NAME "avx2"
#define IMP_GGML_KERNELS_FN kernels_avx2
#include "kernels_impl.h"
