#include "profile/profile.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "imp/error.h"

namespace fs = std::filesystem;

namespace {

// A fresh directory under the build tree for this test run.
fs::path test_dir() {
    static fs::path d = [] {
        fs::path p = fs::path(IMP_BINARY_DIR) / "test-profiles" / std::to_string(getpid());
        fs::remove_all(p);
        fs::create_directories(p);
        return p;
    }();
    return d;
}

std::string write(const std::string& name, const std::string& text) {
    fs::path p = test_dir() / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
}

template <class F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "";
}

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// The error loading `text` as a profile file named bad.toml gives ("" when it loads).
std::string load_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
    auto path = write("bad.toml", text);
    return error_of([&] { imp::load_profile(path, overrides); });
}

}  // namespace

TEST_CASE("profile: defaults", "[profile]") {
    auto p = imp::default_profile();
    CHECK(p.file.empty());
    CHECK(p.model.path.empty());
    CHECK(p.runtime.executor == "auto");
    CHECK(p.runtime.max_seq_len == 4096);
    CHECK(p.runtime.prefill_chunk == 512);
    CHECK(p.runtime.cuda_graphs);
    CHECK(p.runtime.kv_dtype == "auto");
    CHECK(p.runtime.threads == 0);
    CHECK(p.sampling.temperature == 0.8);
    CHECK(p.sampling.top_k == 40);
    CHECK(p.sampling.top_p == 0.95);
    CHECK(p.sampling.min_p == 0.05);
    CHECK(p.sampling.repeat_penalty == 1.0);
    CHECK(p.sampling.repeat_last_n == 64);
    CHECK(p.sampling.seed == 0);
    CHECK(p.generate.prompt == "The capital of France is");
    CHECK(p.generate.n_predict == 32);
    CHECK(p.generate.chat == "auto");
    CHECK(p.generate.system.empty());
    CHECK(p.bench.pp == std::vector<int64_t>{512});
    CHECK(p.bench.tg == std::vector<int64_t>{128});
    CHECK(p.bench.reps == 5);
}

TEST_CASE("profile: a full profile parses and relative paths resolve against its directory", "[profile]") {
    auto path = write("sub/full.toml", R"(# every key
[model]
path = "../models/m.gguf"
[plugins]
load = ["arch_llama", "quant_ggml", "arch_llama"]
paths = ["plugins", "/abs/plugins"]
[runtime]
executor = "cpu"
max_seq_len = 1024
prefill_chunk = 256
cuda_graphs = false
kv_dtype = "fp8"
threads = 4
[sampling]
temperature = 0     # an integer is fine for a float key
top_k = 0
top_p = 1.0
min_p = 0.0
repeat_penalty = 1.1
repeat_last_n = 0
seed = 1234
[generate]
prompt = "Hi"
n_predict = 7
chat = false
system = "Be brief."
[bench]
pp = [128, 256]
tg = 64
reps = 2
)");
    auto p = imp::load_profile(path, {});
    const std::string dir = (test_dir() / "sub").string();
    CHECK(p.file == path);
    CHECK(p.model.path == (test_dir() / "models/m.gguf").lexically_normal().string());
    CHECK(p.plugins.load == std::vector<std::string>{"arch_llama", "quant_ggml"});
    CHECK(p.plugins.paths == std::vector<std::string>{dir + "/plugins", "/abs/plugins"});
    CHECK(p.runtime.executor == "cpu");
    CHECK(p.runtime.max_seq_len == 1024);
    CHECK(p.runtime.prefill_chunk == 256);
    CHECK_FALSE(p.runtime.cuda_graphs);
    CHECK(p.runtime.kv_dtype == "fp8");
    CHECK(p.runtime.threads == 4);
    CHECK(p.sampling.temperature == 0.0);
    CHECK(p.sampling.top_k == 0);
    CHECK(p.sampling.top_p == 1.0);
    CHECK(p.sampling.min_p == 0.0);
    CHECK(p.sampling.repeat_penalty == 1.1);
    CHECK(p.sampling.repeat_last_n == 0);
    CHECK(p.sampling.seed == 1234);
    CHECK(p.generate.prompt == "Hi");
    CHECK(p.generate.n_predict == 7);
    CHECK(p.generate.chat == "false");
    CHECK(p.generate.system == "Be brief.");
    CHECK(p.bench.pp == std::vector<int64_t>{128, 256});
    CHECK(p.bench.tg == std::vector<int64_t>{64});
    CHECK(p.bench.reps == 2);
}

TEST_CASE("profile: an empty file gives the defaults", "[profile]") {
    auto p = imp::load_profile(write("empty.toml", ""), {});
    CHECK(p.runtime.max_seq_len == 4096);
    CHECK(p.bench.pp == std::vector<int64_t>{512});
}

TEST_CASE("profile: unknown keys and sections name the file and line", "[profile]") {
    auto err = load_error("[runtime]\nmax_seq_len = 8\nfoo = 1\n");
    INFO(err);
    CHECK(has(err, "bad.toml:3: unknown key 'runtime.foo' (keys in [runtime]: executor, max_seq_len"));

    err = load_error("[model]\npath = \"x\"\n\n[runtim]\nmax_seq_len = 8\n");
    INFO(err);
    CHECK(has(err, "bad.toml:4: unknown section [runtim] (sections: model, plugins, runtime, sampling"));

    err = load_error("max_seq_len = 8\n");
    CHECK(has(err, "bad.toml:1: unknown key 'max_seq_len'"));

    err = load_error("runtime = 3\n");
    CHECK(has(err, "bad.toml:1: key 'runtime' must be a table, got integer"));

    err = load_error("[runtime.sub]\nx = 1\n");
    CHECK(has(err, "bad.toml:1: unknown key 'runtime.sub'"));

    err = load_error("# dotted keys at the top level\nruntime.bogus = 1\n");
    CHECK(has(err, "bad.toml:2: unknown key 'runtime.bogus'"));
}

TEST_CASE("profile: wrong types name the key, line, expected and actual type", "[profile]") {
    CHECK(has(load_error("[runtime]\n\nmax_seq_len = \"big\"\n"),
              "bad.toml:3: key 'runtime.max_seq_len' must be an integer, got string"));
    CHECK(has(load_error("[runtime]\nmax_seq_len = 10.5\n"),
              "bad.toml:2: key 'runtime.max_seq_len' must be an integer, got float"));
    CHECK(has(load_error("[runtime]\ncuda_graphs = 1\n"),
              "bad.toml:2: key 'runtime.cuda_graphs' must be a boolean (true or false), got integer"));
    CHECK(has(load_error("[sampling]\ntemperature = \"hot\"\n"),
              "bad.toml:2: key 'sampling.temperature' must be a number, got string"));
    CHECK(has(load_error("[model]\npath = 3\n"), "bad.toml:2: key 'model.path' must be a string, got integer"));
    CHECK(has(load_error("[plugins]\nload = \"arch_llama\"\n"),
              "bad.toml:2: key 'plugins.load' must be an array of strings, got string"));
    CHECK(has(load_error("[plugins]\nload = [\"a\", 2]\n"),
              "bad.toml:2: key 'plugins.load' must be an array of strings, got an element of type integer"));
    CHECK(has(load_error("[bench]\npp = [1, \"2\"]\n"),
              "bad.toml:2: key 'bench.pp' must be an array of integers, got an element of type string"));
    CHECK(has(load_error("[generate]\nprompt = 2024-01-01\n"),
              "bad.toml:2: key 'generate.prompt' must be a string, got date"));
}

TEST_CASE("profile: bad enum values list the allowed ones", "[profile]") {
    CHECK(has(load_error("[runtime]\nexecutor = \"gpu\"\n"),
              "bad.toml:2: key 'runtime.executor' must be one of auto, cpu, cuda, got 'gpu'"));
    CHECK(has(load_error("[runtime]\nkv_dtype = \"fp16\"\n"),
              "bad.toml:2: key 'runtime.kv_dtype' must be one of auto, bf16, fp8, f32, got 'fp16'"));
    CHECK(has(load_error("[generate]\nchat = \"yes\"\n"),
              "bad.toml:2: key 'generate.chat' must be one of auto, true, false, got 'yes'"));
    CHECK(imp::load_profile(write("chat.toml", "[generate]\nchat = true\n")).generate.chat == "true");
    CHECK(imp::load_profile(write("chat2.toml", "[generate]\nchat = \"false\"\n")).generate.chat == "false");
    CHECK(has(load_error("[plugins]\nload = [\"../x\"]\n"),
              "bad.toml:2: key 'plugins.load' has an invalid plugin name"));
}

TEST_CASE("profile: out-of-range numbers are rejected", "[profile]") {
    CHECK(has(load_error("[runtime]\nmax_seq_len = 0\n"), "bad.toml:2: key 'runtime.max_seq_len' must be in [1, "));
    CHECK(has(load_error("[runtime]\nprefill_chunk = -5\n"), "key 'runtime.prefill_chunk' must be in [1, "));
    CHECK(has(load_error("[runtime]\nthreads = -1\n"), "key 'runtime.threads' must be in [0, 4096], got -1"));
    CHECK(has(load_error("[sampling]\ntemperature = -0.5\n"),
              "bad.toml:2: key 'sampling.temperature' must be >= 0, got -0.5"));
    CHECK(has(load_error("[sampling]\ntemperature = nan\n"), "key 'sampling.temperature' must be a finite number"));
    CHECK(has(load_error("[sampling]\ntop_p = 0\n"), "key 'sampling.top_p' must be in (0, 1], got 0"));
    CHECK(has(load_error("[sampling]\ntop_p = 1.5\n"), "key 'sampling.top_p' must be in (0, 1], got 1.5"));
    CHECK(has(load_error("[sampling]\nmin_p = 2\n"), "key 'sampling.min_p' must be in [0, 1], got 2"));
    CHECK(has(load_error("[sampling]\ntop_k = -1\n"), "key 'sampling.top_k' must be in [0, 2147483647], got -1"));
    CHECK(has(load_error("[sampling]\nrepeat_penalty = 0\n"), "key 'sampling.repeat_penalty' must be >= 0.001, got 0"));
    CHECK(has(load_error("[sampling]\nrepeat_penalty = 1e-40\n"), "key 'sampling.repeat_penalty' must be >= 0.001"));
    CHECK(has(load_error("[sampling]\nseed = -1\n"), "key 'sampling.seed' must be >= 0, got -1"));
    CHECK(has(load_error("[sampling]\nrepeat_last_n = 4096\n"),
              "key 'sampling.repeat_last_n' must be in [0, 1024], got 4096"));
    CHECK(has(load_error("[generate]\nn_predict = 0\n"), "key 'generate.n_predict' must be >= 1, got 0"));
    CHECK(has(load_error("[bench]\nreps = 0\n"), "bad.toml:2: key 'bench.reps' must be in [1, 1000000], got 0"));
    CHECK(has(load_error("[bench]\npp = [512, 0]\n"), "key 'bench.pp' elements must be in [1, "));
    CHECK(has(load_error("[bench]\nbatch = [1, 0]\n"), "key 'bench.batch' elements must be in [1, 4096]"));
    CHECK(has(load_error("[bench]\nablate = [\"router\", \"\"]\n"), "key 'bench.ablate' must not list an empty kernel name"));
    CHECK(has(load_error("[bench]\nablate = [3]\n"), "key 'bench.ablate' must be an array of strings"));
    CHECK(has(load_error("[runtime]\nmax_seqs = 0\n"), "key 'runtime.max_seqs' must be in [1, 4096], got 0"));
    CHECK(has(load_error("[runtime]\nkv_blocks = -1\n"), "key 'runtime.kv_blocks' must be in [0, "));
    CHECK(has(load_error("[model]\npath = \"\"\n"), "key 'model.path' must not be empty"));
}

TEST_CASE("profile: TOML syntax errors give file, line and column", "[profile]") {
    auto err = load_error("[runtime]\nmax_seq_len = = 3\n");
    INFO(err);
    CHECK(err.rfind((test_dir() / "bad.toml").string() + ":2:", 0) == 0);
    CHECK(err.find('\n') == std::string::npos);

    err = load_error("[runtime]\nmax_seq_len = 1\nmax_seq_len = 2\n");  // duplicate key
    INFO(err);
    CHECK(has(err, "bad.toml:3:"));
}

TEST_CASE("profile: a procfs file is read to its end, not as an empty profile", "[profile]") {
    // stat says 0 bytes; its text ("Name:\t...") is no TOML
    CHECK(error_of([] { imp::load_profile("/proc/self/status", {}); }).rfind("/proc/self/status:1:", 0) == 0);
}

TEST_CASE("profile: a missing file", "[profile]") {
    auto missing = (test_dir() / "nope.toml").string();
    CHECK(error_of([&] { imp::load_profile(missing, {}); }) == missing + ": no such profile");
    CHECK(has(error_of([&] { imp::load_profile(test_dir().string(), {}); }), "is a directory"));
}

TEST_CASE("profile: --set overrides parse as TOML values and are validated", "[profile]") {
    auto path = write("set.toml", "[runtime]\nmax_seq_len = 2048\n[generate]\nprompt = \"a\"\n");
    auto p = imp::load_profile(path, {"runtime.max_seq_len=1024", "runtime.executor=cuda", "runtime.cuda_graphs=false",
                                      "sampling.temperature=0", "generate.prompt=Hello, world = 42",
                                      "generate.system=\"quoted \\\" string\"", "bench.pp=[64, 128]", "bench.tg=32",
                                      "plugins.load=[\"arch_llama\"]", " sampling.seed = 7 "});
    CHECK(p.runtime.max_seq_len == 1024);
    CHECK(p.runtime.executor == "cuda");
    CHECK_FALSE(p.runtime.cuda_graphs);
    CHECK(p.sampling.temperature == 0.0);
    CHECK(p.generate.prompt == "Hello, world = 42");
    CHECK(p.generate.system == "quoted \" string");
    CHECK(p.bench.pp == std::vector<int64_t>{64, 128});
    CHECK(p.bench.tg == std::vector<int64_t>{32});
    CHECK(p.plugins.load == std::vector<std::string>{"arch_llama"});
    CHECK(p.sampling.seed == 7);

    // A string key takes the text as written, even when it would parse as a number.
    auto q = imp::default_profile();
    imp::apply_override(q, "generate.prompt=42");
    CHECK(q.generate.prompt == "42");
    imp::apply_override(q, "generate.chat=true");
    CHECK(q.generate.chat == "true");
    imp::apply_override(q, "model.path=rel/model.gguf");
    CHECK(q.model.path == "rel/model.gguf");  // relative to the current directory

    auto set_error = [](const std::string& kv) {
        auto d = imp::default_profile();
        return error_of([&] { imp::apply_override(d, kv); });
    };
    CHECK(set_error("runtime.foo=1") ==
          "--set runtime.foo=1: unknown key 'runtime.foo' (keys in [runtime]: executor, max_seq_len, prefill_chunk, "
          "cuda_graphs, kv_dtype, threads, max_seqs, kv_blocks)");
    CHECK(set_error("runtime.max_seq_len=abc") ==
          "--set runtime.max_seq_len=abc: key 'runtime.max_seq_len' must be an integer, got string");
    CHECK(set_error("runtime.max_seq_len=0") ==
          "--set runtime.max_seq_len=0: key 'runtime.max_seq_len' must be in [1, 16777216], got 0");
    CHECK(set_error("runtime.executor=gpu") ==
          "--set runtime.executor=gpu: key 'runtime.executor' must be one of auto, cpu, cuda, got 'gpu'");
    CHECK(set_error("runtime.max_seq_len") == "--set runtime.max_seq_len: expected section.key=value");
    CHECK(has(set_error("runtime=1"), "--set runtime=1: expected section.key=value, e.g. runtime.executor=..."));
    CHECK(has(set_error("foo=1"), "--set foo=1: unknown key 'foo'"));
    CHECK(has(set_error("foo.bar=1"), "--set foo.bar=1: unknown section [foo]"));
    CHECK(set_error("bench.pp=[1,\"x\"]") ==
          "--set bench.pp=[1,\"x\"]: key 'bench.pp' must be an array of integers, got an element of type string");
    // A string key takes any text as written: what TOML would read as an array, and spaces at either end.
    imp::apply_override(q, "generate.prompt=[1]");
    CHECK(q.generate.prompt == "[1]");
    imp::apply_override(q, "generate.prompt= The capital of France is ");
    CHECK(q.generate.prompt == " The capital of France is ");
    imp::apply_override(q, "generate.prompt=\"quoted \"");
    CHECK(q.generate.prompt == "quoted ");
    // An option's literal value (--model, --host) is never read as TOML: a file name of any bytes.
    imp::apply_override(q, "model.path=caf\xE9 \"x\".gguf", true);
    CHECK(q.model.path == "caf\xE9 \"x\".gguf");

    // Overrides apply after the file, and their errors name the override, not the file.
    auto err = error_of([&] { imp::load_profile(path, {"runtime.kv_dtype=q4"}); });
    CHECK(err == "--set runtime.kv_dtype=q4: key 'runtime.kv_dtype' must be one of auto, bf16, fp8, f32, got 'q4'");
}

TEST_CASE("profile: --set numbers: out of range is said, values print as given", "[profile]") {
    auto set_error = [](const std::string& kv) {
        auto d = imp::default_profile();
        return error_of([&] { imp::apply_override(d, kv); });
    };
    CHECK(set_error("sampling.temperature=1e999") ==
          "--set sampling.temperature=1e999: key 'sampling.temperature': 1e999 is out of range for a float");
    CHECK(set_error("sampling.top_k=99999999999999999999") ==
          "--set sampling.top_k=99999999999999999999: key 'sampling.top_k': 99999999999999999999 is out of range "
          "for a 64-bit integer");
    CHECK(has(set_error("bench.pp=-9223372036854775809"), "-9223372036854775809 is out of range for a 64-bit integer"));
    CHECK(has(set_error("plugin.core.x=1e999"), "key 'plugin.core.x': 1e999 is out of range for a float"));
    CHECK(set_error("sampling.top_p=1.0000001") ==
          "--set sampling.top_p=1.0000001: key 'sampling.top_p' must be in (0, 1], got 1.0000001");
    CHECK(has(set_error("sampling.temperature=-1e300"), "must be >= 0, got -1e+300"));
    // A string key keeps the text; a bare word is still "a string" where a number is asked for.
    auto p = imp::default_profile();
    imp::apply_override(p, "generate.prompt=1e999");
    CHECK(p.generate.prompt == "1e999");
    CHECK(set_error("sampling.temperature=warm") ==
          "--set sampling.temperature=warm: key 'sampling.temperature' must be a number, got string");
}

TEST_CASE("profile: where each key was set, for the checks made once plugins and server are up", "[profile]") {
    auto path = write("where.toml", "[model]\npath = \"m.gguf\"\n\nformats = [\"ggml\"]\n[plugins]\nload = [\"x\"]\n");
    auto p = imp::load_profile(path, {"plugins.load=[\"arch_llama\"]"});
    CHECK(p.where("model.formats") == path + ":4");
    CHECK(p.where("plugins.load") == "--set plugins.load=[\"arch_llama\"]");  // the last setting wins
    CHECK(p.where("server.host") == path);  // not set: the file
    CHECK(imp::default_profile().where("server.host") == "--model");
}

TEST_CASE("profile: the model path must exist", "[profile]") {
    auto model = write("models/tiny.gguf", "GGUF");
    auto path = write("m/ok.toml", "[model]\npath = \"../models/tiny.gguf\"\n");
    auto p = imp::load_profile(path, {});
    CHECK(fs::equivalent(p.model.path, model));
    CHECK_NOTHROW(imp::check_model_path(p));

    auto bad = write("m/bad.toml", "[model]\npath = \"missing.gguf\"\n");
    auto q = imp::load_profile(bad, {});
    CHECK(error_of([&] { imp::check_model_path(q); }) ==
          bad + ": [model] path '" + (test_dir() / "m/missing.gguf").string() + "' does not exist");

    auto none = imp::load_profile(write("m/none.toml", "[runtime]\nthreads = 1\n"), {});
    CHECK(error_of([&] { imp::check_model_path(none); }) == none.file + ": [model] path is not set");

    auto d = imp::default_profile();
    d.model.path = "/nonexistent/model.gguf";
    CHECK(error_of([&] { imp::check_model_path(d); }) ==
          "--model: [model] path '/nonexistent/model.gguf' does not exist");
}

TEST_CASE("profile: [model] formats lists quant formats in order of preference, validated", "[profile]") {
    CHECK(imp::default_profile().model.formats.empty());
    auto p = imp::load_profile(write("formats.toml", "[model]\npath = \"m.gguf\"\nformats = [\"nvfp4\", \"ggml\"]\n"));
    CHECK(p.model.formats == std::vector<std::string>{"nvfp4", "ggml"});
    imp::apply_override(p, "model.formats=[\"quant_fp8.v2\"]");
    CHECK(p.model.formats == std::vector<std::string>{"quant_fp8.v2"});
    CHECK(has(load_error("[model]\nformats = \"ggml\"\n"),
              "bad.toml:2: key 'model.formats' must be an array of strings, got string"));
    CHECK(has(load_error("[model]\nformats = [\"ggml\", \"ggml\"]\n"),
              "bad.toml:2: key 'model.formats' names format 'ggml' twice"));
    CHECK(has(load_error("[model]\nformats = [\"\"]\n"), "bad.toml:2: key 'model.formats' has an invalid format name ''"));
    CHECK(has(load_error("[model]\nformats = [\"a b\"]\n"), "invalid format name 'a b'"));
}

TEST_CASE("profile: a non-ASCII character where the TOML reader cannot take it is an error with line and column",
          "[profile]") {
    // toml++ 3.3 reaches undefined behaviour on these instead of reporting them (toml_text_check.h).
    CHECK(load_error("[generate]\nprompt = \xC3\xA9t\xC3\xA9\n") ==
          test_dir().string() + "/bad.toml:2:10: non-ASCII character U+00E9 outside a string or comment (TOML allows "
                                "it only between quotes)");
    CHECK(has(load_error("[generate]\nsystem = \"\"\"a \\\n  \xD0\x96\"\"\"\n"),
              "bad.toml:3:3: U+0416 after a backslash in a multi-line string"));
    // Between quotes and in comments they are text.
    auto path = write("utf8.toml", "# r\xC3\xA9sum\xC3\xA9\n[generate]\nsystem = \"R\xC3\xA9ponds\"\n");
    CHECK(imp::load_profile(path).generate.system == "R\xC3\xA9ponds");
}

TEST_CASE("profile: --set with non-ASCII text takes it as a string", "[profile]") {
    imp::Profile p;
    imp::apply_override(p, "generate.system=\xC3\xA9clair \xD0\x96");
    CHECK(p.generate.system == "\xC3\xA9clair \xD0\x96");
    imp::apply_override(p, "generate.prompt=\"\xC3\xA9\"");
    CHECK(p.generate.prompt == "\xC3\xA9");
    imp::apply_override(p, "generate.system=1\"\xC3\xA9\"");  // not one TOML value: the text as written
    CHECK(p.generate.system == "1\"\xC3\xA9\"");
}
