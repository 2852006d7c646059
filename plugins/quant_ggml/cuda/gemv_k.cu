// quant_ggml CUDA: GEMV instances for the 256-element super-block types.
#include "gemv_tiled.cuh"

namespace imp::ggml::cuda {

template void launch_gemv_tiled<LayoutQ4_K>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
template void prepare_tiled<LayoutQ4_K>();
template void launch_gemv_tiled<LayoutQ5_K>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
template void prepare_tiled<LayoutQ5_K>();
template void launch_gemv_tiled<LayoutQ6_K>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
template void prepare_tiled<LayoutQ6_K>();

}  // namespace imp::ggml::cuda
