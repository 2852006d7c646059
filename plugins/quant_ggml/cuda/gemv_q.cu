// quant_ggml CUDA: GEMV instances for the 32-element block types.
#include "gemv_tiled.cuh"

namespace imp::ggml::cuda {

template void launch_gemv_tiled<LayoutQ4_0>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
template void prepare_tiled<LayoutQ4_0>();
template void launch_gemv_tiled<LayoutQ4_1>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
template void prepare_tiled<LayoutQ4_1>();
template void launch_gemv_tiled<LayoutQ8_0>(const DeviceLayout&, const GemvArgs&, int, int, cudaStream_t);
template void prepare_tiled<LayoutQ8_0>();

}  // namespace imp::ggml::cuda
