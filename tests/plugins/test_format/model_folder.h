// Test helpers for the load-plan tests: packed4 weights with known values, a safetensors model folder written from
// them (config.json, optional hf_quant_config.json, model.safetensors), and a ModelDesc whose one layer declares
// whatever WeightSpecs a test needs.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "imp/arch.h"
#include "imp/dtype.h"
#include "imp/layer.h"

namespace imp::testfmt {

struct FileTensor {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::string bytes;
};

template <class T>
std::string raw_bytes(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A packed4 weight: the three file tensors under `module` and its values W[r, c] (fp32, decoded here independently
// of the format). n > 0 makes a 3-D stack of n matrices (weight_scale_2 [n]).
struct Packed {
    std::vector<FileTensor> tensors;
    std::vector<float> values;  // [n or 1][rows][cols]
};

inline float e2m1_ref(uint8_t q) {
    const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
    return (q & 8) ? -mag[q & 7] : mag[q & 7];
}

inline Packed make_packed(const std::string& module, int64_t rows, int64_t cols, std::mt19937& rng, int64_t n = 0,
                          bool f32_scales = false, float global = 0.f) {
    const int64_t m = n > 0 ? n : 1;
    std::uniform_int_distribution<int> code(0, 15);
    std::uniform_real_distribution<float> scale(0.25f, 2.f), glob(0.01f, 0.1f);
    std::vector<uint8_t> codes(static_cast<size_t>(m * rows * cols / 2));
    for (auto& b : codes) b = uint8_t(code(rng) | (code(rng) << 4));
    std::vector<uint8_t> s8(static_cast<size_t>(m * rows * cols / 16));
    std::vector<float> s32(s8.size());
    for (size_t i = 0; i < s8.size(); ++i) {
        s8[i] = f32_to_fp8_e4m3(scale(rng));
        s32[i] = f32_scales ? scale(rng) : fp8_e4m3_to_f32(s8[i]);
    }
    std::vector<float> g(static_cast<size_t>(m));
    for (auto& v : g) v = global > 0 ? global : glob(rng);
    Packed p;
    p.values.resize(size_t(m * rows * cols));
    for (int64_t e = 0; e < m; ++e)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
                const int64_t row = e * rows + r;
                const uint8_t byte = codes[size_t(row * cols / 2 + c / 2)];
                const uint8_t q = (c % 2) ? uint8_t(byte >> 4) : uint8_t(byte & 15);
                p.values[size_t(row * cols + c)] = e2m1_ref(q) * s32[size_t(row * cols / 16 + c / 16)] * g[size_t(e)];
            }
    std::vector<int64_t> cs = {rows, cols / 2}, ss = {rows, cols / 16};
    if (n > 0) cs.insert(cs.begin(), n), ss.insert(ss.begin(), n);
    p.tensors.push_back({module + ".weight", "U8", cs, raw_bytes(codes)});
    if (f32_scales) p.tensors.push_back({module + ".weight_scale", "F32", ss, raw_bytes(s32)});
    else p.tensors.push_back({module + ".weight_scale", "F8_E4M3", ss, raw_bytes(s8)});
    p.tensors.push_back({module + ".weight_scale_2", "F32", n > 0 ? std::vector<int64_t>{n} : std::vector<int64_t>{},
                         raw_bytes(g)});
    return p;
}

// A BF16 tensor of random values (bf16-exact), and its fp32 values.
inline FileTensor make_bf16(const std::string& name, std::vector<int64_t> shape, std::mt19937& rng,
                            std::vector<float>& values) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<uint16_t> h(static_cast<size_t>(n));
    values.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
        h[size_t(i)] = f32_to_bf16(nd(rng) + 0.01f);
        values[size_t(i)] = bf16_to_f32(h[size_t(i)]);
    }
    return {name, "BF16", std::move(shape), raw_bytes(h)};
}

inline FileTensor make_f32(const std::string& name, std::vector<int64_t> shape, float v) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return {name, "F32", std::move(shape), raw_bytes(std::vector<float>(size_t(n), v))};
}

// A fresh folder under the temp dir, removed with its contents when the object dies.
struct ModelFolder {
    std::filesystem::path dir;
    explicit ModelFolder(const std::string& tag) {
        dir = std::filesystem::temp_directory_path() / ("imp_load_plan_" + tag + "_" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
    }
    ~ModelFolder() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void text(const std::string& name, const std::string& s) const { std::ofstream(dir / name) << s; }
    // model.safetensors with the tensors in order, offsets contiguous; config.json unless written already.
    void write(const std::vector<FileTensor>& ts) const {
        std::string header = "{", data;
        for (const auto& t : ts) {
            std::string shape;
            for (auto d : t.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
            header += (header.size() > 1 ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"" + t.dtype +
                      "\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
                      std::to_string(data.size() + t.bytes.size()) + "]}";
            data += t.bytes;
        }
        header += "}";
        while (header.size() % 8) header += ' ';
        std::ofstream f(dir / "model.safetensors", std::ios::binary);
        const uint64_t n = header.size();
        f.write(reinterpret_cast<const char*>(&n), 8);
        f << header << data;
        if (!std::filesystem::exists(dir / "config.json")) text("config.json", "{\"model_type\": \"test\"}");
    }
    std::string path() const { return dir.string(); }
};

class SpecLayer final : public Layer {
public:
    explicit SpecLayer(std::vector<WeightSpec> specs) : specs_(std::move(specs)) {}
    std::string kind() const override { return "test.specs"; }
    std::vector<WeightSpec> weight_specs() const override { return specs_; }
    void bind(const WeightSet&) override {}
    int64_t scratch_floats(int64_t) const override { return 0; }
    void forward(LayerContext&, float*) override {}

private:
    std::vector<WeightSpec> specs_;
};

inline WeightSpec matrix_spec(const std::string& name, int64_t rows, int64_t cols) {
    WeightSpec s;
    s.name = name;
    s.shape = {rows, cols};
    return s;
}

inline WeightSpec experts_spec(const std::string& name, int64_t n, int64_t rows, int64_t cols,
                               const std::string& pattern = "") {
    WeightSpec s;
    s.name = name;
    s.shape = {n, rows, cols};
    s.use = WeightSpec::Use::Experts;
    s.expert_pattern = pattern;
    return s;
}

// Embedding "emb.weight" [vocab, embd] (tied LM head), norm "norm.weight" [embd], one layer with `specs`.
inline ModelDesc model_desc(int64_t vocab, int64_t embd, std::vector<WeightSpec> specs) {
    ModelDesc d;
    d.arch = "test";
    d.n_vocab = vocab;
    d.n_embd = embd;
    d.tok_embd = d.output = "emb.weight";
    d.output_norm = "norm.weight";
    d.layers.push_back(std::make_unique<SpecLayer>(std::move(specs)));
    return d;
}

}  // namespace imp::testfmt
