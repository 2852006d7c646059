// The engine: one model loaded on one executor. Builds the arch's layer stack, checks every declared weight
// against the file (presence, shape), plans memory (weights, KV/recurrent state, activations, scratch) and
// allocates it once, then runs forward passes over consecutive tokens of one sequence.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imp/arch.h"
#include "imp/executor.h"
#include "imp/model.h"
#include "imp/registry.h"

namespace imp {

struct EngineOptions {
    int64_t max_seq_len = 4096;    // KV capacity; 0 = the model's trained context (capped at 8192)
    int64_t prefill_chunk = 512;   // tokens per forward call during prefill
    DType kv_dtype = DType::F32;   // KV cache element type (F32, F16, BF16, F8_E4M3)
    bool cuda_graphs = true;       // capture the one-token decode step once and replay it (executors that can)
    std::vector<std::string> formats;  // the profile's [model] formats (quant formats in order of preference)
};

struct MemoryPlan {
    uint64_t weights = 0, state = 0, activations = 0, scratch = 0;
    int fused = 0;  // fused (row-concatenated) matrices built from several file tensors (WeightSpec::concat)
    uint64_t total() const { return weights + state + activations + scratch; }
};

class Engine {
public:
    Engine(const ModelSource& src, const Registry& reg, Executor& ex, const EngineOptions& opt);
    ~Engine();

    const ModelDesc& desc() const;
    const MemoryPlan& plan() const;
    int64_t position() const;   // tokens already in the state
    int64_t capacity() const;   // max_seq_len in effect
    void reset();               // forget the sequence (position back to 0)
    bool graphs_active() const; // decode steps replay a captured graph

    // Runs `n` tokens at the current position (split into prefill_chunk pieces) and advances it.
    // The last token's logits are always computed and kept on the device for sample(). logits: host buffer that
    // receives them (n_vocab floats), or all n * n_vocab when all_logits; null downloads nothing.
    // Throws imp::Error when position + n exceeds the capacity, naming both numbers.
    void forward(const int32_t* tokens, int64_t n, float* logits = nullptr, bool all_logits = false);
    // Picks the next token from the last forward's final logits on the executor (only the id crosses to the host).
    // recent: the last n_recent tokens (host) for the repetition penalty; step: the draw's counter (see sampler.h).
    int32_t sample(const SamplingParams& p, uint64_t step, const int32_t* recent, int64_t n_recent);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imp
