// The engine: one model loaded on one executor, holding up to max_seqs sequences at once. Builds the arch's layer
// stack, plans the weights (runtime/load_plan.h) and all other device memory (a shared paged KV pool, recurrent
// state slots, activations, scratch) and allocates it once, then runs steps: the tokens of several sequences —
// prefill and decode rows together — in one forward pass (runtime/step_runner.h), and samples one token per
// sequence. The single-sequence calls (forward/sample/reset/position) are the one-sequence case of the same path.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "imp/arch.h"
#include "imp/executor.h"
#include "imp/model.h"
#include "imp/registry.h"
#include "runtime/load_phase.h"

namespace imp {

struct EngineOptions {
    int64_t max_seq_len = 4096;    // positions one sequence can hold; 0 = the model's trained context (capped at 8192)
    int64_t prefill_chunk = 512;   // most rows (tokens of all sequences) in one forward pass
    DType kv_dtype = DType::F32;   // KV cache element type (F32, F16, BF16, F8_E4M3)
    bool cuda_graphs = true;       // capture decode steps per batch-size bucket and replay them (executors that can)
    int max_seqs = 1;              // sequences held at once
    int64_t kv_blocks = 0;         // KV pool blocks of 16 positions; 0 = enough for max_seqs full sequences
    bool fuse_weights = true;      // build fused (row-concatenated) matrices (WeightSpec::concat)
    // decode steps: before each layer runs, queue the next layer's Layer::prefetch_weights ([plugin.core] l2_prefetch)
    bool l2_prefetch = false;
    // Keep the KV blocks of every full 16-token block a sequence ran for later sequences whose tokens begin the same
    // way (attach_prefix); ignored for models with recurrent state.
    bool prefix_cache = false;
    std::vector<std::string> formats;  // the profile's [model] formats (quant formats in order of preference)
    std::string formats_where;         // where they were set, for messages ("<file>:<line>", "--set <kv>")
};

struct MemoryPlan {
    uint64_t weights = 0, state = 0, activations = 0, scratch = 0;
    int fused = 0;  // fused (row-concatenated) matrices built from several file tensors (WeightSpec::concat)
    int64_t kv_blocks = 0;  // blocks of 16 positions in the KV pool (one reserved)
    uint64_t total() const { return weights + state + activations + scratch; }
};

// What Engine::preflight reports (`imp plan`): the model as it would load on an executor; nothing allocated.
struct EnginePlan {
    std::string arch, arch_plugin;  // the Arch that builds the model and the plugin that registered it
    int64_t n_embd = 0, n_vocab = 0, capacity = 0, prefill_chunk = 0, rows = 0;
    int max_seqs = 0;
    MemoryPlan memory;          // scratch excludes the matmul workspace, known exactly only after upload
    uint64_t workspace = 0;     // the formats' planned matmul workspace
    uint64_t available = 0;     // free executor memory; the model is admitted when memory.total() <= available
    // The layers of one kind, state and op list (in order of first appearance).
    struct LayerGroup {
        std::vector<int> layers;
        std::string kind, state;               // state: "KV 8 x 64", "recurrent <bytes> per sequence", "none"
        std::vector<std::string> ops;          // registered ops the layers call
        std::vector<std::string> op_problems;  // per op: "" when this executor can run it, else why not
    };
    std::vector<LayerGroup> layers;
    struct WeightRow {
        std::string name, role, format, plugin, type, source;  // source: the file tensors it reads
        std::vector<int64_t> shape;
        uint64_t bytes = 0;
    };
    std::vector<WeightRow> weights;  // matrices, expert stacks (fused weights as one row) and vectors
};

using SeqId = int32_t;

// The tokens one sequence runs in a step. Its last token's logits are computed.
struct SeqWork {
    SeqId seq = 0;
    const int32_t* tokens = nullptr;  // host
    int64_t n = 0;
};

// The most recent tokens the repetition penalty looks at per sequence (a profile's sampling.repeat_last_n at most).
inline constexpr int64_t kMaxRepeatLastN = 1024;
// The smallest repetition penalty accepted: a smaller divisor overflows a penalized logit to inf.
inline constexpr double kMinRepeatPenalty = 1e-3;

// How to sample the row of one sequence of the last step.
struct SeqSample {
    SamplingParams params;
    uint64_t step = 0;                // the draw's counter (see sampler.h)
    const int32_t* recent = nullptr;  // host: the sequence's last tokens, for the repetition penalty
    int64_t n_recent = 0;             // the last kMaxRepeatLastN of them are used
};

class Engine {
public:
    Engine(const ModelSource& src, const Registry& reg, Executor& ex, const EngineOptions& opt);
    ~Engine();
    // Builds the layer stack and plans weights and memory as the constructor would, then stops before admission
    // and upload. Throws what the constructor throws up to that point (bad file, no format, unsupported op).
    static EnginePlan preflight(const ModelSource& src, const Registry& reg, Executor& ex, const EngineOptions& opt);

    const ModelDesc& desc() const;
    const MemoryPlan& plan() const;
    int64_t capacity() const;   // max_seq_len in effect
    int max_seqs() const;
    bool graphs_active() const; // some decode step replays a captured graph
    const std::vector<LoadPhase>& load_phases() const;  // the weight upload's time per kind of weight

    // ---- sequences
    SeqId add_sequence();                 // position 0, zeroed state; throws when max_seqs are held
    void release_sequence(SeqId id);      // its KV blocks go back to the pool
    int64_t position(SeqId id) const;     // tokens already in the sequence's state
    int64_t free_kv_blocks() const;       // blocks kept for prefix caching that no sequence holds count as free
    // Prefix caching (EngineOptions::prefix_cache): a new sequence (position 0) starts on the longest run of kept
    // KV blocks the prompt begins with, leaving its last token to run; returns the positions it skipped (a multiple
    // of 16; 0 when prefix caching is off or the model has recurrent state). Step the rest of the prompt after them.
    // salt: only sequences with the same salt share blocks (0: every unsalted sequence).
    int64_t attach_prefix(SeqId id, std::span<const int32_t> prompt, uint64_t salt = 0);
    bool prefix_cache() const;            // whether attach_prefix can skip anything
    // Copies the recurrent state of sequence `from` into sequence `to` (every layer's slot; KV is not copied).
    void copy_state(SeqId from, SeqId to);

    // Runs every item's tokens (split into forward passes of at most prefill_chunk rows; items of one pass are
    // different sequences) and advances each sequence. Each item's last-token logits stay on the device for
    // sample(); logits, when given, receives them (work.size() * n_vocab floats, in work order). Throws imp::Error
    // before running anything on a context overflow, a full KV pool, an unknown or repeated sequence, or a token id
    // outside the vocabulary.
    void step(std::span<const SeqWork> work, float* logits = nullptr);
    // Picks the next token of each item of the last step (rows[i] for work[i]); writes rows.size() ids to out.
    void sample(std::span<const SeqSample> rows, int32_t* out);
    // Copies the last-token logits of some items of the last step (indices into its work, any order) to out
    // (items.size() * n_vocab floats, in the order given): a server fetches only the rows that asked for logprobs.
    void last_logits(std::span<const int> items, float* out) const;
    // Captures the decode step of every batch-size bucket (1, 2, 4, ... up to max_seqs rounded up to a power of
    // two) now, so that no later step pays for a capture (a server's first steps at each load). Does nothing on an
    // executor without graphs or with cuda_graphs off; returns the buckets captured.
    int capture_decode_graphs();

    // ---- one sequence (the first one, created on first use)
    int64_t position() const;
    void reset();  // forget the sequence (position back to 0, state zeroed)
    // Runs n tokens of the sequence. logits: host buffer for the last token's logits (n_vocab floats), or for all
    // n * n_vocab when all_logits; null downloads nothing.
    void forward(const int32_t* tokens, int64_t n, float* logits = nullptr, bool all_logits = false);
    int32_t sample(const SamplingParams& p, uint64_t step, const int32_t* recent, int64_t n_recent);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imp
