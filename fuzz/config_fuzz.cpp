// Fuzz target: a model folder's config.json (and hf_quant_config.json) as the hyper-parameter readers see them. The
// input is config.json, optionally followed by "\n--8<--\n" and hf_quant_config.json; beside them a fixed
// model.safetensors with two layers' tensors. Exercises the JSON reader, the flattening into dotted metadata keys,
// the hyper-parameter bounds (hparam_bounds.h), every typed metadata getter, and the quantization config parser.
#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz_util.h"
#include "imp/error.h"
#include "model/quant_config.h"
#include "model/safetensors_reader.h"

namespace {
// Two F32 tensors "model.layers.0.w" and "model.layers.1.w" of shape [1].
std::string tiny_safetensors() {
    const std::string h =
        R"({"model.layers.0.w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
        R"("model.layers.1.w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
    std::string out(8, '\0');
    const uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
    return out + h + std::string(8, '\0');
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace fs = std::filesystem;
    const auto parts = imp::fuzz::split(data, size, 2);
    const fs::path& dir = imp::fuzz::scratch_dir("config");
    static const bool once = [&] {
        imp::fuzz::write_file(dir / "model.safetensors", tiny_safetensors());
        return true;
    }();
    (void)once;
    imp::fuzz::write_file(dir / "config.json", parts[0]);
    std::error_code ec;
    fs::remove(dir / "hf_quant_config.json", ec);
    if (!parts[1].empty()) imp::fuzz::write_file(dir / "hf_quant_config.json", parts[1]);
    try {
        auto src = imp::SafetensorsSource::open_folder(dir.string());
        const imp::Metadata& md = src->metadata();
        for (const auto& [key, v] : md.all()) {
            // Each getter either returns or throws imp::Error naming the key.
            try { (void)md.get_int(key); } catch (const imp::Error&) {}
            try { (void)md.get_float(key); } catch (const imp::Error&) {}
            try { (void)md.get_bool(key); } catch (const imp::Error&) {}
            try { (void)md.get_string(key); } catch (const imp::Error&) {}
            try { (void)md.get_array(key); } catch (const imp::Error&) {}
            (void)v.to_display(8);
        }
        (void)imp::read_quant_config(*src);
    } catch (const imp::Error&) {
    }
    return 0;
}
