#include "packed_format.h"

#include <cstring>

#include "imp/dtype.h"
#include "imp/error.h"
#include "imp/executor.h"

namespace imp::testfmt {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

float f32_at(const uint8_t* p, int64_t i) {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
}

// One packed [rows, cols] matrix in memory (the file's or the executor's).
struct Mat {
    const uint8_t* codes = nullptr;   // [rows, cols / 2]
    const uint8_t* scales = nullptr;  // [rows, cols / 16], F8_E4M3 (f8) or F32
    bool f8 = true;
    float global = 1.f;
    int64_t rows = 0, cols = 0;

    void decode_row(int64_t r, float* out) const {
        const uint8_t* c = codes + r * (cols / 2);
        for (int64_t j = 0; j < cols; ++j) {
            const uint8_t q = (j & 1) ? uint8_t(c[j / 2] >> 4) : uint8_t(c[j / 2] & 15);
            const int64_t si = r * (cols / 16) + j / 16;
            const float s = f8 ? fp8_e4m3_to_f32(scales[si]) : f32_at(scales, si);
            out[j] = PackedFormat::e2m1(q) * s * global;
        }
    }
    uint64_t code_bytes() const { return uint64_t(rows * cols / 2); }
    uint64_t scale_bytes() const { return uint64_t(rows * cols / 16) * (f8 ? 1 : 4); }
};

// One file unit: codes + scales + global scale of a matrix, or of a stack of n matrices (3-D).
struct Unit {
    const TensorInfo *codes, *scales, *global;
    int64_t n = 0, rows = 0, cols = 0;
    bool stacked = false, f8 = true;

    std::vector<Mat> mats(const uint8_t* codes_at, const uint8_t* scales_at) const {
        std::vector<Mat> out;
        for (int64_t e = 0; e < n; ++e) {
            Mat m;
            m.rows = rows, m.cols = cols, m.f8 = f8;
            m.codes = codes_at + e * m.code_bytes();
            m.scales = scales_at + e * m.scale_bytes();
            m.global = f32_at(global->data, e);
            out.push_back(m);
        }
        return out;
    }
};

// Reads one source holding a main tensor. "" and u filled, or why packed4 does not take it; throws for a packed
// source whose tensors do not fit together.
std::string read_unit(const WeightSource& s, Unit& u) {
    if (!s.main) return "no tensor of that name";
    if (s.main->type != "U8") return "type " + s.main->type + " is not U8 codes";
    u.codes = s.main;
    u.scales = s.find("weight_scale");
    u.global = s.find("weight_scale_2");
    if (!u.scales || !u.global) return "no weight_scale / weight_scale_2 beside '" + s.main->name + "'";
    const auto& cs = u.codes->shape;
    u.stacked = cs.size() == 3;
    if (cs.size() != 2 && !u.stacked) throw Error("packed4: '" + s.main->name + "' is " + shape_str(cs));
    u.n = u.stacked ? cs[0] : 1;
    u.rows = cs[cs.size() - 2];
    u.cols = 2 * cs.back();
    u.f8 = u.scales->type == "F8_E4M3";
    std::vector<int64_t> want_scales = {u.rows, u.cols / 16}, want_global = {u.n};
    if (u.stacked) want_scales.insert(want_scales.begin(), u.n);
    const bool global_ok = u.global->shape == want_global || (!u.stacked && u.global->shape.empty());
    if (u.cols % 16 != 0 || u.scales->shape != want_scales || (!u.f8 && u.scales->type != "F32") || !global_ok ||
        u.global->type != "F32" || u.codes->nbytes != uint64_t(u.n * u.rows * u.cols / 2) ||
        u.scales->nbytes != uint64_t(u.n * u.rows * u.cols / 16) * (u.f8 ? 1 : 4) || u.global->nbytes != uint64_t(4 * u.n))
        throw Error("packed4: '" + s.main->name + "' " + shape_str(cs) + " does not fit its scales " +
                    u.scales->type + " " + shape_str(u.scales->shape) + " and " + shape_str(u.global->shape));
    return "";
}

struct Layout {
    std::string refusal;
    std::vector<Unit> units;
    std::vector<int64_t> shape;
};

Layout layout_of(const WeightSource& src) {
    Layout l;
    std::vector<const WeightSource*> srcs;
    for (const auto& p : src.parts) srcs.push_back(&p);
    for (const auto& e : src.experts) srcs.push_back(&e);
    if (srcs.empty()) srcs.push_back(&src);
    for (const auto* s : srcs) {
        Unit u;
        l.refusal = read_unit(*s, u);
        if (!l.refusal.empty()) return l;
        if (srcs.size() > 1 && u.stacked) {
            l.refusal = "'" + u.codes->name + "' is a stack inside a concatenation";
            return l;
        }
        l.units.push_back(u);
    }
    const Unit& u0 = l.units[0];
    int64_t rows = 0;
    for (const auto& u : l.units) {
        if (u.cols != u0.cols || (!src.experts.empty() && u.rows != u0.rows)) {
            l.refusal = "'" + u.codes->name + "' does not stack with '" + u0.codes->name + "'";
            return l;
        }
        rows += u.rows;
    }
    if (!src.parts.empty()) l.shape = {rows, u0.cols};
    else if (!src.experts.empty()) l.shape = {int64_t(l.units.size()), u0.rows, u0.cols};
    else if (u0.stacked) l.shape = {u0.n, u0.rows, u0.cols};
    else l.shape = {u0.rows, u0.cols};
    return l;
}

uint64_t layout_bytes(const Layout& l) {
    uint64_t total = 0;
    for (const auto& u : l.units) total += u.codes->nbytes + u.scales->nbytes;
    return total;
}

// All matrices of a layout copied into one allocation of ex (codes and block scales; the global scales stay on the
// host, in the matrices).
std::vector<Mat> upload(const Layout& l, const std::string& name, Executor& ex) {
    const uint64_t total = layout_bytes(l);
    auto* p = static_cast<uint8_t*>(ex.alloc(total, name.c_str()));
    std::vector<Mat> out;
    for (const auto& u : l.units) {
        ex.upload(p, u.codes->data, u.codes->nbytes);
        ex.upload(p + u.codes->nbytes, u.scales->data, u.scales->nbytes);
        const auto m = u.mats(p, p + u.codes->nbytes);
        out.insert(out.end(), m.begin(), m.end());
        p += u.codes->nbytes + u.scales->nbytes;
    }
    return out;
}

double dot(const float* a, const float* b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
    return s;
}

class PackedWeight final : public Weight {
public:
    PackedWeight(std::vector<Mat> mats, uint64_t bytes) : mats_(std::move(mats)), bytes_(bytes) {
        for (const auto& m : mats_) rows_ += m.rows;
        cols_ = mats_[0].cols;
    }
    std::string type() const override { return "PACKED4"; }
    uint64_t bytes() const override { return bytes_; }
    void matmul(Executor& ex, const float* x, int64_t xs, float* y, int64_t ys, int64_t n_tokens,
                bool accumulate) const override {
        ex.parallel_for(rows_, 4, [&](int64_t r0, int64_t r1) {
            std::vector<float> w(static_cast<size_t>(cols_));
            for (int64_t r = r0; r < r1; ++r) {
                row(r, w.data());
                for (int64_t t = 0; t < n_tokens; ++t) {
                    const float v = float(dot(w.data(), x + t * xs, cols_));
                    y[t * ys + r] = accumulate ? y[t * ys + r] + v : v;
                }
            }
        });
    }
    void get_rows(Executor&, const int32_t* ids, int64_t n, float* out) const override {
        for (int64_t i = 0; i < n; ++i) {
            if (ids[i] < 0 || ids[i] >= rows_) throw Error("packed4: row id " + std::to_string(ids[i]) + " out of range");
            row(ids[i], out + i * cols_);
        }
    }

private:
    void row(int64_t r, float* out) const {
        size_t m = 0;
        while (r >= mats_[m].rows) r -= mats_[m++].rows;
        mats_[m].decode_row(r, out);
    }
    std::vector<Mat> mats_;
    uint64_t bytes_;
};

class PackedExperts final : public ExpertWeights {
public:
    PackedExperts(std::vector<Mat> mats, uint64_t bytes) : mats_(std::move(mats)), bytes_(bytes) {
        n_expert_ = int64_t(mats_.size());
        rows_ = mats_[0].rows;
        cols_ = mats_[0].cols;
    }
    std::string type() const override { return "PACKED4"; }
    uint64_t bytes() const override { return bytes_; }
    void grouped_matmul(Executor&, const ExpertMatmul& m) const override {
        std::vector<float> w(static_cast<size_t>(cols_));
        std::vector<double> acc(static_cast<size_t>(rows_));
        for (int64_t t = 0; t < m.n_tokens; ++t) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t j = 0; j < m.top_k; ++j) {
                const int64_t slot = t * m.top_k + j;
                const int32_t id = m.ids[slot];
                const float* x = m.x + (m.x_per_slot ? slot : t) * m.x_stride;
                float* y = m.y + (m.weights ? t : slot) * m.y_stride;
                const bool valid = id >= 0 && id < n_expert_;
                for (int64_t r = 0; r < rows_; ++r) {
                    double v = 0;
                    if (valid) {
                        mats_[size_t(id)].decode_row(r, w.data());
                        v = dot(w.data(), x, cols_);
                    }
                    if (m.weights) acc[size_t(r)] += double(m.weights[slot]) * v;
                    else if (valid || !m.accumulate) y[r] = float((m.accumulate ? y[r] : 0.0) + v);
                }
            }
            if (!m.weights) continue;
            float* y = m.y + t * m.y_stride;
            for (int64_t r = 0; r < rows_; ++r) y[r] = float((m.accumulate ? y[r] : 0.0) + acc[size_t(r)]);
        }
    }

private:
    std::vector<Mat> mats_;
    uint64_t bytes_;
};

}  // namespace

float PackedFormat::e2m1(uint8_t code) {
    static const float kMag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
    return (code & 8) ? -kMag[code & 7] : kMag[code & 7];
}

WeightPlan PackedFormat::plan(const WeightRequest& req, const Executor& ex) const {
    if (ex.kind() != DeviceKind::CPU) return WeightPlan::refuse("CPU only");
    const Layout l = layout_of(req.source);
    if (!l.refusal.empty()) return WeightPlan::refuse(l.refusal);
    if (req.config && req.config->group_size != 0 && req.config->group_size != 16)
        return WeightPlan::refuse("group size " + std::to_string(req.config->group_size) + ", packed4 has 16");
    WeightPlan p;
    for (const auto& u : l.units) {
        const std::string module = module_of(u.codes->name);
        if (req.config && req.config->excluded(module))
            return WeightPlan::refuse("module '" + module + "' is excluded by the quantization config");
        p.consumed.insert(p.consumed.end(), {u.codes, u.scales, u.global});
    }
    p.device_bytes = layout_bytes(l);
    p.accepted = true;
    p.type = "PACKED4";
    p.shape = l.shape;
    return p;
}

std::unique_ptr<Weight> PackedFormat::load(const WeightRequest& req, Executor& ex) const {
    const Layout l = layout_of(req.source);
    if (!l.refusal.empty() || l.shape.size() != 2)
        throw Error("packed4: cannot load '" + req.name + "' as a matrix: " + (l.refusal.empty() ? shape_str(l.shape) : l.refusal));
    return std::make_unique<PackedWeight>(upload(l, req.name, ex), layout_bytes(l));
}

std::unique_ptr<ExpertWeights> PackedFormat::load_experts(const WeightRequest& req, Executor& ex) const {
    const Layout l = layout_of(req.source);
    if (!l.refusal.empty() || l.shape.size() != 3)
        throw Error("packed4: cannot load '" + req.name + "' as experts: " + (l.refusal.empty() ? shape_str(l.shape) : l.refusal));
    return std::make_unique<PackedExperts>(upload(l, req.name, ex), layout_bytes(l));
}

void PackedFormat::dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const {
    const Layout l = layout_of(src);
    if (!l.refusal.empty()) throw Error("packed4: cannot dequantize " + src.describe() + ": " + l.refusal);
    std::vector<Mat> mats;
    for (const auto& u : l.units) {
        const auto m = u.mats(u.codes->data, u.scales->data);
        mats.insert(mats.end(), m.begin(), m.end());
    }
    int64_t total = 0;
    for (const auto& m : mats) total += m.rows;
    if (row0 < 0 || nrows < 0 || row0 > total - nrows)
        throw Error("packed4: dequantize " + src.describe() + ": rows outside its " + std::to_string(total));
    const int64_t cols = mats[0].cols;
    for (int64_t i = 0; i < nrows; ++i) {
        int64_t r = row0 + i;
        size_t m = 0;
        while (r >= mats[m].rows) r -= mats[m++].rows;
        mats[m].decode_row(r, out + i * cols);
    }
}

}  // namespace imp::testfmt
