// Helpers shared by the fuzz targets: splitting one input into parts, and a private scratch folder for targets that
// read files by path (a safetensors folder, a profile).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace imp::fuzz {

// The parts of `data` between separator lines "\n--8<--\n" (the seed corpora use it too); at most `max_parts`, the
// last one keeping any further separators.
inline std::vector<std::string> split(const uint8_t* data, size_t size, size_t max_parts) {
    static const std::string_view kSep = "\n--8<--\n";
    std::string_view all(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> parts;
    while (parts.size() + 1 < max_parts) {
        const size_t at = all.find(kSep);
        if (at == std::string_view::npos) break;
        parts.emplace_back(all.substr(0, at));
        all.remove_prefix(at + kSep.size());
    }
    parts.emplace_back(all);
    parts.resize(max_parts);
    return parts;
}

// A folder of this process under the temp dir, re-filled for each input and removed at a normal exit (the replay
// tests); libFuzzer ends with _Exit, so scripts/fuzz points TMPDIR into build-fuzz/ and empties it.
inline const std::filesystem::path& scratch_dir(const char* tag) {
    static const std::filesystem::path dir = [&] {
        auto d = std::filesystem::temp_directory_path() / ("imp_fuzz_" + std::string(tag) + "_" + std::to_string(::getpid()));
        std::filesystem::create_directories(d);
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratch_dir(""), ec);
        });
        return d;
    }();
    return dir;
}

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace imp::fuzz
