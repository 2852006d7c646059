// Engine internals shared by engine.cpp (build, memory plan, sequences, API) and step_runner.cpp (forward passes,
// decode graphs per batch-size bucket, LM head, sampling).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/engine.h"
#include "runtime/kv_block.h"
#include "runtime/load_plan.h"
#include "runtime/sequences.h"

namespace imp {

constexpr int64_t kLmHeadRows = 32;   // rows per LM-head matmul when all logits are requested
constexpr int kKvBlock = kKvBlockTokens;  // KV page size (positions)
constexpr int64_t kMaxRecent = kMaxRepeatLastN;  // most tokens the repetition penalty looks back at, per sequence

// One piece of a forward pass: rows [off, off + n) of work item `item` (sequence seq).
struct StepSegment {
    int item = 0;
    SeqId seq = 0;
    int64_t off = 0, n = 0;
    bool last = false;  // ends the item: its last row gets logits
};

struct Engine::Impl {
    const ModelSource& src;
    const Registry& reg;
    Executor& ex;
    EngineOptions opt;
    ModelDesc desc;
    MemoryPlan plan;
    Weights weights;
    int64_t capacity = 0, chunk = 0, lm_rows = 0;
    int seq_rows = 0;       // sequences a pass can carry: max_seqs rounded up to a power of two (graph buckets)
    int64_t rows = 0;       // rows a pass can carry: max(chunk, seq_rows)
    std::optional<SequenceTable> seqs;
    std::vector<KVCacheView> kv;     // per layer (empty view for layers without KV)
    std::vector<StateView> state;    // per layer (empty for layers without recurrent state)
    // Device buffers.
    float* hidden = nullptr;         // [rows, n_embd]
    float* normed = nullptr;         // [max(lm_rows, seq_rows), n_embd]
    // run_pass: (first row, rows) of each run of rows that end their items; kept, so a step allocates nothing.
    std::vector<std::pair<int64_t, int64_t>> lm_runs;
    float* logits_tmp = nullptr;     // [lm_rows, n_vocab] (all-logits downloads)
    float* final_logits = nullptr;   // [seq_rows, n_vocab]: row i = last logits of work item i of the last step
    int32_t* meta = nullptr;         // tokens | token_pos | token_seq | slot_mapping ([rows] each) | qsl [seq_rows+1]
                                     // | seq_lens | state_slots [seq_rows] | block_tables [seq_rows, max_blocks]
    int32_t* recent = nullptr;       // [seq_rows, kMaxRecent]
    int32_t* sampled = nullptr;      // [seq_rows]
    float* scratch = nullptr;
    std::vector<int32_t> host_meta;
    const Weight* tok_embd = nullptr;
    const Weight* output = nullptr;
    const float* output_norm = nullptr;
    int64_t last_items = 0;          // work items of the last step (rows of final_logits sample() may read)
    std::map<int, int> decode_graphs;  // bucket size -> captured graph
    SeqId single = -1;               // the sequence of the one-sequence calls

    Impl(const ModelSource& s, const Registry& r, Executor& e, const EngineOptions& o) : src(s), reg(r), ex(e), opt(o) {}

    std::optional<LoadPlan> lp;      // between prepare() and the upload
    void prepare();  // arch build, op checks, sizes, load plan, memory plan: nothing allocated
    void build();    // prepare(), admission, upload, runtime buffers, bind
    void allocate_runtime();
    void zero_state(SeqId id);
    size_t meta_ints() const;
    // step_runner.cpp
    void run_step(std::span<const SeqWork> work, float* logits, bool all_logits);
    void run_pass(std::span<const SeqWork> work, const std::vector<StepSegment>& segs, float* logits, bool all_logits);
    StepBatch fill_meta(std::span<const SeqWork> work, const std::vector<StepSegment>& segs, int pad_seqs);
    void run_layers(const StepBatch& b);
    void lm_head(int64_t first_row, int64_t n_rows, float* out);
    // Captures the all-decode step of one bucket over the metadata b (already uploaded) and keeps it.
    std::map<int, int>::iterator capture_decode(const StepBatch& b, int bucket);
    int capture_buckets();  // every bucket not captured yet; returns how many
    void warm_bucket(int bucket);  // one eager pass of `bucket` padding sequences (before its capture)
};

}  // namespace imp
