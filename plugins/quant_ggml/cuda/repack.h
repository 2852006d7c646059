// quant_ggml CUDA: the device layout of a weight (tile_layout.h) and the host repack from ggml blocks into it.
#pragma once
#include <cstdint>
#include <vector>

#include "ggml_types.h"

namespace imp::ggml::cuda {

// Where a weight of `type` [rows, cols] lives on the GPU.
//  - Block types (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K): row groups of 16 rows, each `rg_bytes` = chunks * tile bytes.
//  - Plain types (F32, F16, BF16): rows of `ld` elements (cols rounded up to 8, zero padding), 16-byte aligned.
struct DeviceLayout {
    Type type = Type::F32;
    int64_t rows = 0, cols = 0;
    bool tiled = false;
    int64_t n_rg = 0, chunks = 0, rg_bytes = 0;  // tiled
    int64_t ld = 0;                              // plain: elements per row
    uint64_t bytes = 0;
};

// True when the CUDA kernels handle type t.
bool cuda_supports(Type t);
// The layout of a [rows, cols] weight of type t (t supported; cols a whole number of blocks).
DeviceLayout device_layout(Type t, int64_t rows, int64_t cols);
// Repacks `rows` rows of `row_bytes` ggml bytes each (src) into layout.bytes bytes at dst (threads: host threads to
// use, 0 = all). Every byte of dst is written (padding as zeros). Block types go a 32-bit word of a lane at a time.
void repack(const DeviceLayout& layout, const uint8_t* src, uint64_t row_bytes, uint8_t* dst, int threads = 0);
// The same bytes as repack, one element at a time through the layout's code_of/put_code (tile_layout.h): the
// reference that repack is tested against and its benchmark baseline (several times slower).
void repack_reference(const DeviceLayout& layout, const uint8_t* src, uint64_t row_bytes, uint8_t* dst,
                      int threads = 0);

}  // namespace imp::ggml::cuda
