// `imp bench`: what a benchmark knows about the model (bytes and parameters a token touches), the per-test results,
// and the two report formats (a llama-bench style markdown table, or one JSON record per test).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/bench_device.h"
#include "imp/model.h"
#include "runtime/engine.h"

namespace imp::cli {

struct ModelFacts {
    std::string name;     // file (or folder) name
    std::string path;
    std::string arch;
    std::string quant;    // llama.cpp file type name (Q4_K_M), else the checkpoint's quant_algo, else the dominant type
    uint64_t file_bytes = 0;
    uint64_t n_params = 0;             // elements of every tensor of the file, as stored
    // Matrix weights of the layers a token multiplies by: every matrix and 2-D vector weight (an MoE router), and of
    // each expert stack its top_k / n_expert part (the experts one token runs).
    uint64_t layer_matmul_params = 0;
    uint64_t lm_head_params = 0;
    // Matrix weight bytes a decoded token reads: the layers' matrices and 2-D vector weights (an MoE router, a conv
    // kernel), top_k / n_expert of each expert stack, and
    // the LM head (the embedding row gather is not counted). Bytes as stored in the file (without block scales kept
    // in tensors of their own).
    uint64_t weight_bytes_per_token = 0;
    // The largest matrix of the layers (the FFN's gate/up for the Llama family: n_ff x n_embd), as output x input
    // features; of equal-sized ones the one with the most outputs. The BF16 GEMM probe runs this shape.
    int64_t ffn_out = 0, ffn_in = 0;
};
ModelFacts model_facts(const ModelSource& src, const Engine& engine);

struct TestResult {
    std::string test;            // "pp512", "tg128"
    int64_t n_prompt = 0, n_gen = 0;
    int64_t batch = 1;            // sequences decoding together (tg): n_gen tokens each
    int64_t n_depth = 0;          // context tokens each sequence held before the test (llama-bench's -d)
    int64_t n_mixed = 0;          // tg: prompt tokens of a new sequence in every step too (bench.mixed); not counted
    std::string ablated;          // tg: kernels whose name contains this were off in the decode graphs (bench.ablate)
    int64_t ablated_kernels = 0;  // how many kernel nodes that switched off in the largest graph (one step's worth)
    std::string ablated_base;     // the test name of the same run with every kernel on
    std::vector<double> seconds;  // one per timed repetition
    double avg_ts() const;        // mean of the per-repetition tokens/s, all sequences together
    double stddev_ts() const;     // sample standard deviation of the same
    double avg_s() const;
};

struct RunInfo {
    std::string profile, executor, commit, imp_version, cuda_version, kv_dtype, timestamp;
    DeviceFacts device;
    uint64_t peak_vram_bytes = 0;
    bool graphs = false;         // decode steps replayed a captured graph
    bool cuda_graphs = false;    // runtime.cuda_graphs as set
    int64_t reps = 0;
    bool logits_finite = true;   // the warm-up repetitions' logits had no NaN/Inf (the prefill and every decode step)
    GemmFacts gemm;              // BF16 GEMM rate of the model's FFN shape x the largest pp (CUDA only)
    // Wall time from the start of Session construction (executor, plugins, weights upload; the model file read
    // once before, so it is in the page cache) to the first greedy token of a short prompt, on the host. NAN: not
    // measured.
    double load_to_first_token_s = NAN;
    int64_t first_token_prompt = 0;  // tokens of that prompt
    std::vector<LoadPhase> load_phases;  // the weight upload within it, per kind of weight (Engine::load_phases)
    // Every plugin setting in effect ([plugin.<name>] values and defaults): "<plugin>.<key>" -> its JSON value, and
    // whether the profile set it.
    struct Setting {
        std::string key, json;
        bool set = false;
    };
    std::vector<Setting> settings;
    // The profile's [runtime] values the run used (executor as asked, max_seq_len, prefill_chunk, threads, max_seqs,
    // kv_blocks), as JSON object members: a run with a non-default prefill chunk is visible in its record.
    std::string runtime_json;
};

// Prefill TFLOP/s as computed: 2 * (layer matmul params * tokens + LM head params) / time — the LM head runs for the
// last token only (the one whose logits are kept); attention score FLOPs are not counted.
double prefill_tflops(const ModelFacts& m, const TestResult& r);
// prefill_tflops / the BF16 GEMM rate of the same run; NAN when the GEMM was not measured.
double prefill_vs_gemm(const ModelFacts& m, const TestResult& r, const GemmFacts& g);
// Decode efficiency: weight bytes per token * decode steps/s / copy bandwidth (1.0 = the copy roofline); a step of
// a batch reads the weights once for all its sequences.
double decode_efficiency(const ModelFacts& m, const TestResult& r, const DeviceFacts& d);

std::string format_markdown(const ModelFacts& m, const RunInfo& run, const std::vector<TestResult>& results);
std::string format_json(const ModelFacts& m, const RunInfo& run, const std::vector<TestResult>& results);

}  // namespace imp::cli
