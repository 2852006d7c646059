// imp::open_model: picks the reader from what the path is (folder, GGUF magic, safetensors header or name).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "imp/error.h"
#include "imp/model.h"
#include "model/gguf_reader.h"
#include "model/mapped_file.h"
#include "model/safetensors_reader.h"

namespace imp {

namespace {
bool ends_with(const std::string& s, const char* suffix) {
    size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// A safetensors file starts with a u64 header length followed by '{'.
bool looks_like_safetensors(const MappedFile& f) {
    if (f.size() < 9) return false;
    uint64_t n;
    std::memcpy(&n, f.data(), 8);
    return n >= 2 && n <= f.size() - 8 && f.data()[8] == '{';
}
}  // namespace

std::unique_ptr<ModelSource> open_model(const std::string& path) {
    if (path.empty()) throw Error("the model path is empty");
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) throw Error(path + ": no such file or directory");
        throw Error(path + ": " + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return SafetensorsSource::open_folder(path);
    auto file = MappedFile::open(path);
    if (file->size() >= 4 && std::memcmp(file->data(), "GGUF", 4) == 0) return std::make_unique<GgufSource>(file);
    if (ends_with(path, ".safetensors") || looks_like_safetensors(*file)) return SafetensorsSource::open_file(file);
    if (ends_with(path, ".gguf")) return std::make_unique<GgufSource>(file);  // reports the bad magic
    throw Error(path + ": not a GGUF or safetensors file");
}

}  // namespace imp
