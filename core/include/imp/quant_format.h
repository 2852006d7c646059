// imp SDK: a QuantFormat stores weights in one family of file formats (ggml block quants, NVFP4, ...), uploads them
// to an executor (possibly repacked) and computes y = x W^T with them. Two levels, as vLLM does: the format decides
// per tensor (handles), the per-tensor Weight it creates uploads and applies.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "imp/model.h"

namespace imp {

class Executor;

// What a weight is made of in the file: the main tensor plus auxiliary tensors found beside it
// (e.g. "<prefix>.weight_scale", "<prefix>.weight_scale_2" for NVFP4), keyed by suffix ("weight_scale").
struct WeightSource {
    const TensorInfo* main = nullptr;
    std::map<std::string, const TensorInfo*> aux;
    // A row concatenation (fused projections, WeightSpec::concat): when non-empty, the weight is the rows of
    // parts[0], then those of parts[1], ... (main == parts[0]). Only given to a format whose concat_rows() said yes.
    std::vector<const TensorInfo*> parts;
};

// A 2-D weight W of shape [rows, cols] (rows = output features / vocabulary, cols = input features)
// living on an executor.
class Weight {
public:
    virtual ~Weight() = default;
    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    virtual std::string type() const = 0;   // storage type name, e.g. "Q4_1"
    virtual uint64_t bytes() const = 0;     // device bytes held
    // y[t, r] = sum_c x[t, c] * W[r, c] for t < n_tokens (accumulate: y[t, r] += that sum, e.g. a residual add
    // fused into the projection). x: [n_tokens, cols] (row stride x_stride), y: [n_tokens, rows] (row stride
    // y_stride). Accumulates in fp32; each output is read (when accumulating) and written once, deterministically.
    virtual void matmul(Executor& ex, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n_tokens,
                        bool accumulate) const = 0;
    // out[i, :] = W[ids[i], :] as fp32 (embedding lookup); ids live on the executor's device.
    virtual void get_rows(Executor& ex, const int32_t* ids, int64_t n, float* out) const = 0;
    // Bytes of the executor's shared workspace (Executor::workspace) a matmul over n_tokens rows needs.
    virtual uint64_t workspace_bytes(int64_t n_tokens) const {
        (void)n_tokens;
        return 0;
    }

protected:
    int64_t rows_ = 0, cols_ = 0;
};

class QuantFormat {
public:
    virtual ~QuantFormat() = default;
    virtual std::string name() const = 0;
    // Storage type names this format can take (for `imp plugins` and error messages).
    virtual std::vector<std::string> types() const = 0;
    virtual bool handles(const WeightSource& src) const = 0;
    // Minimum CUDA compute capability (major*10+minor) for its GPU kernels; 0 = any. Data, so a profile can be
    // rejected before weights load.
    virtual int min_compute_capability() const { return 0; }
    // Device bytes the weight will take once uploaded to `ex` (for the memory plan, before anything is uploaded).
    virtual uint64_t device_bytes(const WeightSource& src, const Executor& ex) const = 0;
    // Uploads (and possibly repacks) the weight, viewed as [rows, cols] (the tensor's outermost dim is rows;
    // the rest flattened into cols). Throws imp::Error naming the tensor when it cannot.
    virtual std::unique_ptr<Weight> load(const WeightSource& src, Executor& ex) const = 0;
    // Reference dequantization of n elements (n a multiple of the type's block size) starting at a block boundary.
    virtual void dequantize(const std::string& type, const uint8_t* data, int64_t n, float* out) const = 0;
    // Whether device_bytes() and load() take src.parts (a row concatenation) on ex. False: the core loads the parts
    // as separate weights.
    virtual bool concat_rows(const WeightSource& src, const Executor& ex) const {
        (void)src;
        (void)ex;
        return false;
    }
};

}  // namespace imp
