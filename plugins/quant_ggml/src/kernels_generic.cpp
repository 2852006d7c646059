// Baseline x86-64 (SSE2) build of the kernels.
#define IMP_GGML_KERNELS_NAME "generic"
#define IMP_GGML_KERNELS_FN kernels_generic
#include "kernels_impl.h"
