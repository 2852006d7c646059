// End to end through the `imp` binary on a Hugging Face folder: the tiny Llama safetensors model of
// tests/fixtures/models/llama_tiny with a tokenizer.json (tests/fixtures/tokenizer/hf/bytes256) beside it generates
// text with --chat, and the output is valid UTF-8 even though the random model emits arbitrary bytes.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

#include "tokenizer/unicode.h"

namespace fs = std::filesystem;

namespace {

// Runs a shell command; returns its stdout and sets *status to the exit status.
std::string run(const std::string& cmd, int* status) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    *status = pclose(p);
    return out;
}

bool valid_utf8(const std::string& s) { return imp::unicode::valid_utf8(s) == s; }

}  // namespace

TEST_CASE("imp --model HF folder with tokenizer.json generates valid UTF-8 text", "[e2e][hf]") {
    const std::string src = IMP_SOURCE_DIR;
    const fs::path dir = fs::temp_directory_path() / "imp_e2e_hf_folder";
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const char* f : {"config.json", "model.safetensors"})
        fs::copy_file(src + "/tests/fixtures/models/llama_tiny/" + f, dir / f);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(src + "/tests/fixtures/tokenizer/hf/bytes256/" + f, dir / f);
    const std::string imp = std::string(IMP_BINARY_DIR) + "/bin/imp";
    int status = -1;
    const std::string out = run(imp + " --model " + dir.string() +
                                    " --chat --prompt 'Grüße, 세계' -n 40 --set runtime.executor='\"cpu\"'"
                                    " --set sampling.seed=7 2>/dev/null",
                                &status);
    CHECK(status == 0);
    CHECK(out.size() > 1);
    CHECK(valid_utf8(out));
    // imp tokenize on the same folder: the chat-free prompt's bytes, one id each.
    const std::string ids = run(imp + " tokenize " + dir.string() + " --prompt 'ab' --ids", &status);
    CHECK(status == 0);
    CHECK(ids.find('[') != std::string::npos);
    fs::remove_all(dir);
}
