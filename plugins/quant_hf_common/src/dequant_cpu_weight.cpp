// quant_fp8 / quant_nvfp4: the CPU Weight over a row-dequantization function (see dequant_cpu.h).
#include <algorithm>
#include <vector>

#include "dequant_cpu.h"
#include "imp/error.h"
#include "imp/executor.h"

namespace imp::quant_cpu {

float dot(const float* a, const float* b, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int i = 0; i < 8; ++i) s[i] += a[c + i] * b[c + i];
    for (int i = 0; c < n; ++c, ++i) s[i] += a[c] * b[c];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

namespace {

constexpr int kRowTile = 4;
constexpr int64_t kWorkPerChunk = 1 << 16;

class DequantWeight final : public Weight {
public:
    DequantWeight(std::string plugin, std::string name, std::string type, int64_t rows, int64_t cols, uint64_t bytes,
                  RowFn row)
        : plugin_(std::move(plugin)), name_(std::move(name)), type_(std::move(type)), bytes_(bytes),
          row_(std::move(row)) {
        rows_ = rows;
        cols_ = cols;
    }
    std::string type() const override { return type_; }
    uint64_t bytes() const override { return bytes_; }

    void matmul(Executor& ex, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t n_tokens,
                bool accumulate) const override {
        require(ex);
        if (n_tokens <= 0) return;
        if (n_tokens > 1 && (x_stride < cols_ || y_stride < rows_))
            throw Error(plugin_ + ": tensor '" + name_ + "': matmul strides x " + std::to_string(x_stride) + ", y " +
                        std::to_string(y_stride) + " are below cols " + std::to_string(cols_) + ", rows " +
                        std::to_string(rows_));
        const int64_t per_row = std::max<int64_t>(1, cols_ * n_tokens);
        int64_t grain = (kWorkPerChunk + per_row - 1) / per_row;
        grain = (grain + kRowTile - 1) / kRowTile * kRowTile;
        ex.parallel_for(rows_, grain, [&](int64_t r0, int64_t r1) {
            thread_local std::vector<float> buf;
            if (buf.size() < size_t(kRowTile * cols_)) buf.resize(size_t(kRowTile * cols_));
            for (int64_t r = r0; r < r1; r += kRowTile) {
                const int nr = int(std::min<int64_t>(kRowTile, r1 - r));
                for (int i = 0; i < nr; ++i) row_(r + i, buf.data() + i * cols_);
                for (int64_t t = 0; t < n_tokens; ++t) {
                    float* yt = y + t * y_stride + r;
                    for (int i = 0; i < nr; ++i) {
                        const float v = dot(buf.data() + i * cols_, x + t * x_stride, cols_);
                        yt[i] = accumulate ? yt[i] + v : v;
                    }
                }
            }
        });
    }

    void get_rows(Executor& ex, const int32_t* ids, int64_t n, float* out) const override {
        require(ex);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t id = ids[i];
            if (id < 0 || id >= rows_)
                throw Error(plugin_ + ": tensor '" + name_ + "': row id " + std::to_string(id) +
                            " out of range [0, " + std::to_string(rows_) + ")");
            row_(id, out + i * cols_);
        }
    }

private:
    void require(const Executor& ex) const {
        if (ex.kind() != DeviceKind::CPU)
            throw Error(plugin_ + ": tensor '" + name_ + "' lives in CPU memory; executor " + ex.name() +
                        " is not a CPU executor");
    }

    std::string plugin_, name_, type_;
    uint64_t bytes_;
    RowFn row_;
};

}  // namespace

std::unique_ptr<Weight> make_weight(std::string plugin, std::string name, std::string type, int64_t rows,
                                    int64_t cols, uint64_t bytes, RowFn row) {
    return std::make_unique<DequantWeight>(std::move(plugin), std::move(name), std::move(type), rows, cols, bytes,
                                           std::move(row));
}

}  // namespace imp::quant_cpu
