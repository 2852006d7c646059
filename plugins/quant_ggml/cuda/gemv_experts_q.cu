// quant_ggml CUDA: expert GEMV instances for the 32-element block types.
#include "gemv_experts.cuh"

namespace imp::ggml::cuda {

template void launch_experts_tiled<LayoutQ4_0>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
template bool experts_tiled_fits<LayoutQ4_0>(const DeviceLayout&, int, int);
template void prepare_experts_tiled<LayoutQ4_0>();
template void launch_experts_tiled<LayoutQ4_1>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
template bool experts_tiled_fits<LayoutQ4_1>(const DeviceLayout&, int, int);
template void prepare_experts_tiled<LayoutQ4_1>();
template void launch_experts_tiled<LayoutQ8_0>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
template bool experts_tiled_fits<LayoutQ8_0>(const DeviceLayout&, int, int);
template void prepare_experts_tiled<LayoutQ8_0>();

}  // namespace imp::ggml::cuda
