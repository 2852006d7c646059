// A main for the fuzz targets in the normal build (no libFuzzer): runs LLVMFuzzerTestOneInput once on every file of
// the folders given (the seed corpus and the committed regression inputs), so each crash a fuzzer once found stays a
// test with any compiler.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
    size_t n = 0;
    for (int a = 1; a < argc; ++a) {
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(argv[a], ec)) {
            if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;  // .keep
            std::ifstream f(e.path(), std::ios::binary);
            const std::string bytes((std::istreambuf_iterator<char>(f)), {});
            std::printf("%s\n", e.path().filename().c_str());
            std::fflush(stdout);
            LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
            ++n;
        }
    }
    std::printf("replayed %zu inputs\n", n);
    return n ? 0 : 1;
}
