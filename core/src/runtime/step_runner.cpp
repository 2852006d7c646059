// Forward passes of the engine: a step's work items packed into passes of at most `chunk` rows, the StepBatch
// metadata of each pass filled on the host and uploaded in one copy, the layers run over all rows, and the LM head
// run for the last row of each item that ends in the pass. All-decode steps (one row per sequence) replay a graph
// captured once per batch-size bucket (1, 2, 4, ...; at the first step of that size, or all at once through
// Engine::capture_decode_graphs), with padding sequences filling the bucket. Before a bucket's capture, one eager
// pass of padding sequences only (which write no sequence's cache or state) runs the bucket's ops outside a capture
// once: what a format does at the first call of a shape (cuBLASLt's plans; with gemm_tune, timing its algorithms)
// happens there, not inside the capture, where it cannot.
#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "imp/error.h"
#include "runtime/engine_impl.h"

namespace imp {

size_t Engine::Impl::meta_ints() const {
    return size_t(4 * rows + 3 * int64_t(seq_rows) + 1 + int64_t(seq_rows) * seqs->max_blocks());
}

StepBatch Engine::Impl::fill_meta(std::span<const SeqWork> work, const std::vector<StepSegment>& segs, int pad_seqs) {
    const int64_t o_pos = rows, o_seq = 2 * rows, o_slot = 3 * rows, o_qsl = 4 * rows;
    const int64_t o_lens = o_qsl + seq_rows + 1, o_state = o_lens + seq_rows, o_bt = o_state + seq_rows;
    const int mb = seqs->max_blocks();
    int32_t* h = host_meta.data();
    int64_t r = 0;
    int32_t max_q = 0;
    bool all_decode = true;
    for (size_t s = 0; s < segs.size(); ++s) {
        const StepSegment& g = segs[s];
        const int64_t base = seqs->position(g.seq) + g.off;
        h[o_qsl + int64_t(s)] = int32_t(r);
        for (int64_t i = 0; i < g.n; ++i, ++r) {
            h[r] = work[size_t(g.item)].tokens[g.off + i];
            h[o_pos + r] = int32_t(base + i);
            h[o_seq + r] = int32_t(s);
            h[o_slot + r] = seqs->slot(g.seq, base + i);
        }
        h[o_lens + int64_t(s)] = int32_t(base + g.n);
        h[o_state + int64_t(s)] = g.seq;
        seqs->block_row(g.seq, h + o_bt + int64_t(s) * mb);
        max_q = std::max<int32_t>(max_q, int32_t(g.n));
        all_decode = all_decode && g.n == 1;
    }
    // Padding sequences: one row each at position 0 of the zero block, nothing written, the padding state slot.
    for (int p = 0; p < pad_seqs; ++p, ++r) {
        const int64_t s = int64_t(segs.size()) + p;
        h[o_qsl + s] = int32_t(r);
        h[r] = 0;
        h[o_pos + r] = 0;
        h[o_seq + r] = int32_t(s);
        h[o_slot + r] = -1;
        h[o_lens + s] = 1;
        h[o_state + s] = seqs->max_seqs();
        std::fill(h + o_bt + s * mb, h + o_bt + (s + 1) * mb, 0);
        max_q = std::max(max_q, 1);
    }
    const int64_t n_seqs = int64_t(segs.size()) + pad_seqs;
    h[o_qsl + n_seqs] = int32_t(r);
    ex.upload(meta, h, size_t(o_bt + n_seqs * mb) * 4);  // the block-table rows of unused sequences stay as they are
    StepBatch b;
    b.n_tokens = r;
    b.n_seqs = int32_t(n_seqs);
    b.token_pos = meta + o_pos;
    b.token_seq = meta + o_seq;
    b.query_start_loc = meta + o_qsl;
    b.seq_lens = meta + o_lens;
    b.block_tables = meta + o_bt;
    b.max_blocks = mb;
    b.slot_mapping = meta + o_slot;
    b.state_slots = meta + o_state;
    b.max_query_len = max_q;
    b.all_decode = all_decode;
    return b;
}

void Engine::Impl::run_layers(const StepBatch& b) {
    tok_embd->get_rows(ex, meta, b.n_tokens, hidden);
    // l2_prefetch: while layer l runs, the weights layer l + 1 reads whole stream into the cache (decode steps: their
    // matmuls are latency-bound, and a layer's weights are read once per step).
    // (up to 8 rows: larger decode batches may run GEMMs that read other copies of the weights, e.g. NVFP4's FP8 one)
    const bool prefetch = opt.l2_prefetch && b.all_decode && b.n_tokens <= 8;
    for (size_t l = 0; l < desc.layers.size(); ++l) {
        if (prefetch && l + 1 < desc.layers.size()) desc.layers[l + 1]->prefetch_weights(ex);
        LayerContext ctx{ex, b, kv[l], state[l], scratch};
        desc.layers[l]->forward(ctx, hidden);
    }
}

// Final norm + LM head for rows [first_row, first_row + n_rows) of hidden into out ([n_rows, n_vocab]); the norm in
// the LM head's matmul where its format can (Weight::matmul_fused).
void Engine::Impl::lm_head(int64_t first_row, int64_t n_rows, float* out) {
    if (output_norm) {
        FusedMatmul fm;
        fm.x = hidden + first_row * desc.n_embd, fm.x_stride = desc.n_embd, fm.n_tokens = n_rows;
        fm.y = out, fm.y_stride = desc.n_vocab;
        fm.norm = output_norm, fm.norm_eps = desc.norm_eps;
        if (output->matmul_fused(ex, fm)) return;
    }
    ex.rms_norm(hidden + first_row * desc.n_embd, output_norm, normed, n_rows, desc.n_embd, desc.norm_eps);
    output->matmul(ex, normed, desc.n_embd, out, desc.n_vocab, n_rows, false);
}

void Engine::Impl::run_pass(std::span<const SeqWork> work, const std::vector<StepSegment>& segs, float* logits,
                            bool all_logits) {
    const StepBatch b = fill_meta(work, segs, 0);
    run_layers(b);
    const int64_t n_embd = desc.n_embd, n_vocab = desc.n_vocab;
    if (all_logits) {  // one item: the LM head over every row, in sub-batches, each downloaded
        const StepSegment& g = segs[0];
        for (int64_t r0 = 0; r0 < g.n; r0 += lm_rows) {
            const int64_t rn = std::min(lm_rows, g.n - r0);
            lm_head(r0, rn, logits_tmp);
            if (logits) ex.download(logits + (g.off + r0) * n_vocab, logits_tmp, size_t(rn * n_vocab) * 4);
            if (g.last && r0 + rn == g.n) ex.copy(final_logits, logits_tmp + (rn - 1) * n_vocab, size_t(n_vocab) * 4);
        }
        return;
    }
    // The last row of each item that ends here, gathered into normed (one norm per run of consecutive rows: the
    // decode rows of a mixed step are one run); the items that end in one pass are consecutive, so one matmul
    // writes their rows of final_logits.
    // When those rows are one run (a decode step: every row ends its item), the LM head reads them in place (lm_head:
    // the norm fused in where the format can).
    int64_t k = 0, first_item = -1, row = 0;
    auto& runs = lm_runs;  // (first row, rows)
    runs.clear();
    for (const auto& g : segs) {
        row += g.n;
        if (!g.last) continue;
        if (first_item < 0) first_item = g.item;
        if (g.item != first_item + k) throw Error("internal: items ending in one pass are not consecutive");
        if (!runs.empty() && runs.back().first + runs.back().second == row - 1)
            ++runs.back().second;
        else
            runs.emplace_back(row - 1, 1);
        ++k;
    }
    if (!k) return;
    float* out = final_logits + first_item * n_vocab;
    if (runs.size() == 1) {
        lm_head(runs[0].first, runs[0].second, out);
        return;
    }
    int64_t at = 0;
    for (const auto& [r0, rn] : runs) {
        ex.rms_norm(hidden + r0 * n_embd, output_norm, normed + at * n_embd, rn, n_embd, desc.norm_eps);
        at += rn;
    }
    output->matmul(ex, normed, n_embd, out, n_vocab, k, false);
}

int Engine::Impl::capture_buckets() {
    if (!opt.cuda_graphs || !ex.supports_graphs()) return 0;
    int n = 0;
    for (int bucket = 1; bucket <= seq_rows; bucket *= 2) {
        if (decode_graphs.count(bucket)) continue;
        warm_bucket(bucket);
        capture_decode(fill_meta({}, {}, bucket), bucket);
        ++n;
    }
    return n;
}

void Engine::Impl::warm_bucket(int bucket) {
    const StepBatch pad = fill_meta({}, {}, bucket);
    run_layers(pad);
    lm_head(0, bucket, final_logits);
}

std::map<int, int>::iterator Engine::Impl::capture_decode(const StepBatch& b, int bucket) {
    ex.capture_begin();
    try {
        run_layers(b);
        lm_head(0, bucket, final_logits);
    } catch (...) {
        // End the capture before the error leaves: a stream left capturing would record every later op of this
        // executor (eager steps, uploads) into a graph nobody launches, and the next capture could not begin.
        try {
            (void)ex.capture_end();
        } catch (...) {
        }
        throw;
    }
    return decode_graphs.emplace(bucket, ex.capture_end()).first;
}

void Engine::Impl::run_step(std::span<const SeqWork> work, float* logits, bool all_logits) {
    if (work.empty()) return;
    if (int64_t(work.size()) > seqs->max_seqs())
        throw Error("step: " + std::to_string(work.size()) + " sequences, at most " + std::to_string(seqs->max_seqs()) +
                    " (runtime.max_seqs)");
    std::set<SeqId> seen;
    std::vector<std::pair<int32_t, int64_t>> grow;
    bool decode = true;
    for (size_t i = 0; i < work.size(); ++i) {
        const SeqWork& w = work[i];
        if (!seqs->valid(w.seq)) throw Error("step: unknown sequence id " + std::to_string(w.seq));
        if (!seen.insert(w.seq).second) throw Error("step: sequence " + std::to_string(w.seq) + " appears twice");
        if (w.n <= 0) throw Error("step: sequence " + std::to_string(w.seq) + " has " + std::to_string(w.n) + " tokens");
        for (int64_t t = 0; t < w.n; ++t)
            if (w.tokens[t] < 0 || w.tokens[t] >= desc.n_vocab)
                throw Error("token id " + std::to_string(w.tokens[t]) + " at index " + std::to_string(t) +
                            " is outside the vocabulary of " + std::to_string(desc.n_vocab));
        grow.emplace_back(w.seq, w.n);
        decode = decode && w.n == 1;
    }
    if (all_logits && work.size() != 1) throw Error("step: all logits are kept for one sequence only");
    seqs->reserve(grow);
    const int64_t n_vocab = desc.n_vocab;

    if (decode && !all_logits && opt.cuda_graphs && ex.supports_graphs()) {
        int bucket = 1;
        while (bucket < int(work.size())) bucket *= 2;
        if (!decode_graphs.count(bucket)) warm_bucket(bucket);  // before this step's metadata is uploaded
        std::vector<StepSegment> segs;
        for (size_t i = 0; i < work.size(); ++i) segs.push_back({int(i), work[i].seq, 0, 1, true});
        const StepBatch b = fill_meta(work, segs, bucket - int(work.size()));
        auto it = decode_graphs.find(bucket);
        if (it == decode_graphs.end()) it = capture_decode(b, bucket);
        ex.replay(it->second);
    } else {
        // Passes of at most `chunk` rows, items in order (an item may span passes).
        std::vector<StepSegment> segs;
        int64_t used = 0;
        for (size_t i = 0; i < work.size(); ++i) {
            for (int64_t off = 0; off < work[i].n;) {
                const int64_t n = std::min(work[i].n - off, chunk - used);
                segs.push_back({int(i), work[i].seq, off, n, off + n == work[i].n});
                off += n;
                used += n;
                if (used == chunk) {
                    run_pass(work, segs, logits, all_logits);
                    segs.clear();
                    used = 0;
                }
            }
        }
        if (!segs.empty()) run_pass(work, segs, logits, all_logits);
    }
    for (const auto& w : work) seqs->advance(w.seq, w.n, w.tokens);
    last_items = int64_t(work.size());
    if (logits && !all_logits) ex.download(logits, final_logits, work.size() * size_t(n_vocab) * 4);
}

}  // namespace imp
