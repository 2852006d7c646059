#include "ggml_cpu_weight.h"

#include <algorithm>
#include <vector>

#include "imp/error.h"
#include "imp/executor.h"
#include "kernels.h"

namespace imp::ggml {

void require_cpu(const Executor& ex, const std::string& tensor) {
    if (ex.kind() != DeviceKind::CPU)
        throw Error("quant_ggml: " + ex.name() + " executor not supported yet (tensor '" + tensor + "')");
}

namespace {

// Rows of 4 are dequantized together and dotted with each token's activations (kernels.h: dot_rows).
constexpr int kRowTile = 4;
// Up to this many tokens, block types use the fused dequantize + dot kernels (kernels.h: dot_q) when the build
// has them.
constexpr int64_t kFusedTokens = 4;
// Aim for at least this many multiply-adds per parallel_for chunk.
constexpr int64_t kWorkPerChunk = 1 << 16;

class GgmlWeight final : public Weight {
public:
    GgmlWeight(const std::string& name, const TypeInfo& type, int64_t rows, int64_t cols, uint64_t row_bytes,
               const uint8_t* data, const Kernels& kernels)
        : name_(name), type_(&type), row_bytes_(row_bytes), data_(data), kernels_(&kernels) {
        rows_ = rows;
        cols_ = cols;
    }

    std::string type() const override { return type_->name; }
    uint64_t bytes() const override { return uint64_t(rows_) * row_bytes_; }

    void matmul(Executor& ex, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n_tokens,
                bool accumulate) const override {
        require_cpu(ex, name_);
        if (n_tokens <= 0) return;
        if (n_tokens > 1 && (x_stride < cols_ || y_stride < rows_))
            throw Error("quant_ggml: tensor '" + name_ + "': matmul strides x " + std::to_string(x_stride) + ", y " +
                        std::to_string(y_stride) + " are below cols " + std::to_string(cols_) + ", rows " +
                        std::to_string(rows_));
        const int64_t per_row = std::max<int64_t>(1, cols_ * n_tokens);
        int64_t grain = (kWorkPerChunk + per_row - 1) / per_row;
        grain = (grain + kRowTile - 1) / kRowTile * kRowTile;
        ex.parallel_for(rows_, grain, [&](int64_t r0, int64_t r1) {
            run_rows(x, x_stride, y, y_stride, n_tokens, accumulate, r0, r1);
        });
    }

    void get_rows(Executor& ex, const int32_t* ids, int64_t n, float* out) const override {
        require_cpu(ex, name_);
        const int64_t nb = cols_ / type_->block;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t id = ids[i];
            if (id < 0 || id >= rows_)
                throw Error("quant_ggml: tensor '" + name_ + "': row id " + std::to_string(id) + " out of range [0, " +
                            std::to_string(rows_) + ")");
            kernels_->dequant[int(type_->type)](data_ + uint64_t(id) * row_bytes_, nb, out + i * cols_);
        }
    }

private:
    void run_rows(const float* x, int64_t xs, float* y, int64_t ys, int64_t n_tokens, bool accumulate, int64_t r0,
                  int64_t r1) const {
        const int64_t nb = cols_ / type_->block;
        const auto dot_q = kernels_->dot_q[int(type_->type)];
        if (dot_q && n_tokens <= kFusedTokens) {  // decode: fused dequantize + dot, straight from the blocks
            float acc[kFusedTokens];
            for (int64_t r = r0; r < r1; ++r) {
                const uint8_t* w = data_ + uint64_t(r) * row_bytes_;
                if (!accumulate) {
                    dot_q(w, nb, x, xs, int(n_tokens), y + r, ys);
                    continue;
                }
                dot_q(w, nb, x, xs, int(n_tokens), acc, 1);
                for (int64_t t = 0; t < n_tokens; ++t) y[t * ys + r] += acc[t];
            }
            return;
        }
        // Dequantize kRowTile rows at a time into a thread-local buffer, dot them with every token.
        const bool plain_f32 = type_->type == Type::F32;
        thread_local std::vector<float> buf;
        if (!plain_f32 && buf.size() < size_t(kRowTile * cols_)) buf.resize(size_t(kRowTile * cols_));
        const auto dq = kernels_->dequant[int(type_->type)];
        float acc[kRowTile];
        for (int64_t r = r0; r < r1; r += kRowTile) {
            const int nr = int(std::min<int64_t>(kRowTile, r1 - r));
            const float* w;
            if (plain_f32) {
                w = reinterpret_cast<const float*>(data_ + uint64_t(r) * row_bytes_);
            } else {
                for (int i = 0; i < nr; ++i) dq(data_ + uint64_t(r + i) * row_bytes_, nb, buf.data() + i * cols_);
                w = buf.data();
            }
            for (int64_t t = 0; t < n_tokens; ++t) {
                kernels_->dot_rows(w, cols_, nr, x + t * xs, cols_, acc);
                float* yt = y + t * ys + r;
                if (accumulate)
                    for (int i = 0; i < nr; ++i) yt[i] += acc[i];
                else
                    for (int i = 0; i < nr; ++i) yt[i] = acc[i];
            }
        }
    }

    std::string name_;
    const TypeInfo* type_;
    uint64_t row_bytes_;
    const uint8_t* data_;  // executor memory: rows_ * row_bytes_ raw block bytes
    const Kernels* kernels_;
};

}  // namespace

std::unique_ptr<Weight> make_cpu_weight(const std::string& name, const TypeInfo& type, int64_t rows, int64_t cols,
                                        uint64_t row_bytes, const uint8_t* data, const Kernels& kernels) {
    return std::make_unique<GgmlWeight>(name, type, rows, cols, row_bytes, data, kernels);
}

}  // namespace imp::ggml
