#include "ggml_format.h"

#include <algorithm>
#include <cstring>

#include "cuda_weight.h"
#include "ggml_types.h"
#include "imp/error.h"
#include "imp/executor.h"
#include "kernels.h"

namespace imp::ggml {
namespace {

// Rows of 4 are dequantized together and dotted with each token's activations (kernels.h: dot_rows).
constexpr int kRowTile = 4;
// Up to this many tokens, block types use the fused dequantize + dot kernels (kernels.h: dot_q) when the build
// has them.
constexpr int64_t kFusedTokens = 4;
// Aim for at least this many multiply-adds per parallel_for chunk.
constexpr int64_t kWorkPerChunk = 1 << 16;

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

struct Geometry {
    const TypeInfo* type;
    int64_t rows, cols;
    uint64_t row_bytes;
};

// The tensor viewed as [rows, cols]: outermost dim = rows, the rest flattened into cols. Validates type, shape and
// byte size.
Geometry geometry(const TensorInfo& ti) {
    const TypeInfo* t = find_type(ti.type);
    if (!t) throw Error("quant_ggml: tensor '" + ti.name + "' has type " + ti.type + ", not one of " + type_list());
    if (ti.shape.empty()) throw Error("quant_ggml: tensor '" + ti.name + "' is a scalar, not a matrix");
    int64_t cols = 1;
    for (size_t i = 1; i < ti.shape.size(); ++i) {
        if (ti.shape[i] <= 0 || __builtin_mul_overflow(cols, ti.shape[i], &cols))
            throw Error("quant_ggml: tensor '" + ti.name + "' has bad shape " + shape_str(ti.shape));
    }
    const int64_t rows = ti.shape[0];
    if (rows <= 0) throw Error("quant_ggml: tensor '" + ti.name + "' has bad shape " + shape_str(ti.shape));
    const uint64_t rb = row_bytes(*t, cols, "tensor '" + ti.name + "' (" + t->name + " " + shape_str(ti.shape) + ")");
    const uint64_t total = checked_mul(uint64_t(rows), rb, ti.name.c_str());
    if (ti.nbytes != total)
        throw Error("quant_ggml: tensor '" + ti.name + "' (" + t->name + " " + shape_str(ti.shape) + ") has " +
                    std::to_string(ti.nbytes) + " bytes, expected " + std::to_string(total));
    return {t, rows, cols, rb};
}

void require_cpu(const Executor& ex, const std::string& tensor) {
    if (ex.kind() != DeviceKind::CPU)
        throw Error("quant_ggml: " + ex.name() + " executor not supported yet (tensor '" + tensor + "')");
}

class GgmlWeight final : public Weight {
public:
    GgmlWeight(const std::string& name, const Geometry& g, const uint8_t* data)
        : name_(name), type_(g.type), row_bytes_(g.row_bytes), data_(data), kernels_(&kernels_best()) {
        rows_ = g.rows;
        cols_ = g.cols;
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

std::vector<std::string> GgmlFormat::types() const {
    std::vector<std::string> v;
    for (int i = 0; i < kTypeCount; ++i) v.push_back(type_info(Type(i)).name);
    return v;
}

bool GgmlFormat::handles(const WeightSource& src) const { return src.main && find_type(src.main->type) != nullptr; }

namespace {

// The source as one [rows, cols] matrix: the main tensor, or the row concatenation of the parts.
Geometry source_geometry(const WeightSource& src) {
    Geometry g = geometry(*src.main);
    if (src.parts.empty()) return g;
    g.rows = 0;
    for (const auto* p : src.parts) {
        const Geometry pg = geometry(*p);
        if (pg.type != g.type || pg.cols != g.cols)
            throw Error("quant_ggml: fused weight: tensor '" + p->name + "' (" + p->type + ", " +
                        std::to_string(pg.cols) + " cols) differs from '" + src.main->name + "' (" + src.main->type +
                        ", " + std::to_string(g.cols) + " cols)");
        g.rows += pg.rows;
    }
    return g;
}

std::string source_name(const WeightSource& src) {
    std::string n = src.main->name;
    for (size_t i = 1; i < src.parts.size(); ++i) n += "+" + src.parts[i]->name;
    return n;
}

}  // namespace

bool GgmlFormat::concat_rows(const WeightSource& src, const Executor& ex) const {
    if (!src.main || src.parts.empty() || src.parts[0] != src.main) return false;
    const TypeInfo* t = find_type(src.main->type);
    if (!t) return false;
    for (size_t i = 0; i < src.parts.size(); ++i) {
        const TensorInfo& p = *src.parts[i];
        if (p.type != src.main->type || p.shape.size() != 2 || p.shape[1] != src.main->shape[1]) return false;
        if (ex.kind() == DeviceKind::CUDA && t->block > 1 && i + 1 < src.parts.size() && p.shape[0] % 16 != 0)
            return false;
    }
    return true;
}

uint64_t GgmlFormat::device_bytes(const WeightSource& src, const Executor& ex) const {
    if (!src.main) throw Error("quant_ggml: device_bytes called without a main tensor");
    const Geometry g = source_geometry(src);
    if (ex.kind() == DeviceKind::CUDA) return cuda::device_bytes(src.main->name, g.type->type, g.rows, g.cols);
    return uint64_t(g.rows) * g.row_bytes;
}

std::unique_ptr<Weight> GgmlFormat::load(const WeightSource& src, Executor& ex) const {
    if (!src.main) throw Error("quant_ggml: load called without a main tensor");
    const TensorInfo& ti = *src.main;
    const Geometry g = source_geometry(src);
    const std::string name = source_name(src);
    // Row blocks of the source: the main tensor, or each part in turn.
    std::vector<cuda::RowPart> parts;
    if (src.parts.empty()) parts.push_back({ti.data, g.rows});
    for (const auto* p : src.parts) parts.push_back({p->data, p->shape[0]});
    if (ex.kind() == DeviceKind::CUDA) return cuda::load_weight(name, g.type->type, g.cols, parts, g.row_bytes, ex);
    require_cpu(ex, name);
    const uint64_t n = uint64_t(g.rows) * g.row_bytes;
    auto* p = static_cast<uint8_t*>(ex.alloc(n, name.c_str()));
    uint64_t off = 0;
    for (const auto& part : parts) {
        ex.upload(p + off, part.data, uint64_t(part.rows) * g.row_bytes);
        off += uint64_t(part.rows) * g.row_bytes;
    }
    return std::make_unique<GgmlWeight>(name, g, p);
}

void GgmlFormat::dequantize(const std::string& type, const uint8_t* data, int64_t n, float* out) const {
    const TypeInfo* t = find_type(type);
    if (!t) throw Error("quant_ggml: cannot dequantize type " + type + ", not one of " + type_list());
    if (n < 0 || n % t->block != 0)
        throw Error("quant_ggml: dequantize " + type + ": " + std::to_string(n) +
                    " elements is not a whole number of " + std::to_string(t->block) + "-element blocks");
    kernels_best().dequant[int(t->type)](data, n / t->block, out);
}

}  // namespace imp::ggml
