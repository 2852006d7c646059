// quant_ggml CUDA: expert GEMV instances for the 256-element super-block types.
#include "gemv_experts.cuh"

namespace imp::ggml::cuda {

template void launch_experts_tiled<LayoutQ4_K>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
template bool experts_tiled_fits<LayoutQ4_K>(const DeviceLayout&, int, int);
template void prepare_experts_tiled<LayoutQ4_K>();
template void launch_experts_tiled<LayoutQ5_K>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
template bool experts_tiled_fits<LayoutQ5_K>(const DeviceLayout&, int, int);
template void prepare_experts_tiled<LayoutQ5_K>();
template void launch_experts_tiled<LayoutQ6_K>(const DeviceLayout&, const ExpertsArgs&, int, int, cudaStream_t);
template bool experts_tiled_fits<LayoutQ6_K>(const DeviceLayout&, int, int);
template void prepare_experts_tiled<LayoutQ6_K>();

}  // namespace imp::ggml::cuda
