// Profile: the TOML file a user runs (`imp run --profile configs/x.toml`), plus `--set section.key=value`
// overrides. Every key is documented in configs/README.md. Errors are one line naming the file, line and key.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "imp/export.h"
#include "imp/settings.h"

namespace imp {

struct Profile {
    std::string file;  // profile path ("" when built from --model)
    struct Model {
        std::string path;  // .gguf file or safetensors folder; a relative path in a file resolves against its dir
        // Quant formats allowed to take weights, in order of preference (the first whose plan accepts a weight takes
        // it); empty: every loaded format, highest priority first. Names are checked against the loaded formats
        // when the model is planned.
        std::vector<std::string> formats;
    } model;
    struct Plugins {
        std::vector<std::string> load;   // plugin names, loaded in this order
        std::vector<std::string> paths;  // extra search directories, searched first
    } plugins;
    struct Runtime {
        std::string executor = "auto";  // auto | cpu | cuda
        int64_t max_seq_len = 4096;
        int64_t prefill_chunk = 512;
        bool cuda_graphs = true;
        std::string kv_dtype = "auto";  // auto | bf16 | fp8 | f32 (auto: f32 on CPU, bf16 on CUDA)
        int threads = 0;                // CPU threads, 0 = all cores
        int max_seqs = 1;               // sequences held at once (KV block tables, state slots, decode graph buckets)
        int64_t kv_blocks = 0;          // KV pool blocks of 16 positions, 0 = max_seqs full-length sequences
    } runtime;
    struct Sampling {
        double temperature = 0.8;
        int64_t top_k = 40;
        double top_p = 0.95;
        double min_p = 0.05;
        double repeat_penalty = 1.0;
        int64_t repeat_last_n = 64;
        uint64_t seed = 0;
    } sampling;
    struct Generate {
        std::string prompt = "The capital of France is";
        int64_t n_predict = 32;
        std::string chat = "auto";  // auto | true | false
        std::string system = "";
    } generate;
    struct Bench {
        std::vector<int64_t> pp{512};
        std::vector<int64_t> tg{128};
        int64_t reps = 5;
        std::vector<int64_t> batch{1};  // sequences decoding together in the tg tests
        std::vector<int64_t> depth{0};  // context tokens prefilled before each test (llama-bench's -d)
        std::vector<int64_t> mixed{};   // prompt tokens of a new sequence joining every step of each tg test (serve's mix)
        // Kernel-name substrings: every tg test (without mixed) also runs with those kernels switched off in its
        // decode graphs, one entry at a time (CUDA graphs only): what each class costs in the step
        std::vector<std::string> ablate{};
    } bench;
    struct Server {                         // `imp serve`
        std::string host = "127.0.0.1";
        int64_t port = 8080;                // 0: any free port (printed at start)
        int64_t max_queue = 64;             // requests waiting for a sequence slot; more get HTTP 429
        int64_t step_tokens = 0;            // tokens (decode rows + prompt chunks) per step; 0 = runtime.prefill_chunk
        std::string model_name = "";        // the id in /v1/models; "" = the model file's name without extension
        bool prefix_cache = true;           // prompts start on the KV blocks of earlier ones that began the same way
    } server;
    // [plugin.<name>] tables (and --set plugin.<name>.<key>=v): plugin settings, the file's first, then the overrides
    // in order (a later value of a key wins). Checked against what each plugin declares once the plugins are loaded (apply_plugin_settings).
    struct PluginSetting {
        std::string plugin, key;
        SettingValue value;
        std::string where;  // "<file>:<line>" or "--set <kv>"
        std::string text;   // an override's value as written: what a string setting takes when TOML read a number
    };
    std::vector<PluginSetting> plugin_settings;
    // Where each key the file or an override set ("runtime.threads") was last set: "<file>:<line>" or "--set <kv>",
    // for checks made once the plugins or the server are up.
    std::map<std::string, std::string> set_at;
    // set_at[key], else the profile file ("--model" when there is none).
    IMP_API std::string where(const std::string& key) const;
};

// Reads and validates a profile file, then applies the overrides ("section.key=value") in order.
// Throws imp::Error: "<path>: no such profile", "<file>:<line>:<col>: <TOML syntax error>",
// "<file>:<line>: unknown key 'runtime.foo' (...)", "<file>:<line>: key 'runtime.max_seq_len' must be an integer,
// got string", bad enum values and out-of-range numbers likewise.
IMP_API Profile load_profile(const std::string& path, const std::vector<std::string>& overrides = {});

// The defaults, with no file (for `imp --model FILE`).
IMP_API Profile default_profile();

// Applies one "section.key=value" override. The value is read as a TOML value (1024 is an integer, true a
// boolean, [1, 2] an array); anything that does not parse as one is taken as a bare string, and a string key takes
// the text as written. Errors start with "--set <kv>: ". A relative [model] path or [plugins] path given here
// stays relative to the current directory. `literal`: the value is a string as it is, never read as TOML (an
// option's file name or address, which may hold any bytes).
IMP_API void apply_override(Profile& p, const std::string& kv, bool literal = false);

class Registry;
// Applies the profile's plugin settings to the loaded plugins' declarations (Registry::configure). Throws imp::Error
// "<where>: [plugin.<name>] ..." for a plugin that is not loaded, an unknown key, a wrong type or a bad value.
IMP_API void apply_plugin_settings(const Profile& p, Registry& reg);
// Throws "<profile>: [model] path '<resolved>' does not exist" (or "... is not set").
IMP_API void check_model_path(const Profile& p);

}  // namespace imp
