// Fuzz target: the safetensors reader, one file and a model folder. The input is up to three parts separated by
// "\n--8<--\n" lines (fuzz_util.h): a .safetensors file, config.json, model.safetensors.index.json. The first part alone
// is read as a file; then the three are written into a folder (the file as the shard "model-00001.safetensors" when
// an index is given, else as model.safetensors) and read as a model folder.
#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz_util.h"
#include "imp/error.h"
#include "model/inspect.h"
#include "model/mapped_file.h"
#include "model/safetensors_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto parts = imp::fuzz::split(data, size, 3);
    try {
        auto src = imp::SafetensorsSource::open_file(imp::MappedFile::from_bytes("fuzz.safetensors", parts[0]));
        (void)imp::inspect_model(*src);
    } catch (const imp::Error&) {
    }
    namespace fs = std::filesystem;
    const fs::path& dir = imp::fuzz::scratch_dir("safetensors");
    for (const auto& e : fs::directory_iterator(dir)) fs::remove(e.path());
    imp::fuzz::write_file(dir / "config.json", parts[1]);
    if (!parts[2].empty()) {
        imp::fuzz::write_file(dir / "model.safetensors.index.json", parts[2]);
        imp::fuzz::write_file(dir / "model-00001.safetensors", parts[0]);
    } else {
        imp::fuzz::write_file(dir / "model.safetensors", parts[0]);
    }
    try {
        auto src = imp::SafetensorsSource::open_folder(dir.string());
        (void)imp::inspect_model(*src);
    } catch (const imp::Error&) {
    }
    return 0;
}
