// Multi-sequence steps for the CUDA tests: a StepBatch built from per-sequence (history, rows) on the host and the
// device, over a KV pool whose blocks are handed to the sequences in shuffled, interleaved order (block 0 is the
// zero block of padding sequences), and the same pool on both executors (plus an F32 CPU copy for precision checks).
#pragma once
#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>
#include <vector>

#include "exec/cuda/cuda_test_util.h"

namespace imp::cuda_test {

// Sequence s holds positions [0, ctx) before the step and gets `rows` rows at positions ctx .. ctx + rows - 1. A
// padding sequence has one row at position 0, slot -1 and a block table of zeros (the zero block).
struct SeqSpec {
    int32_t ctx = 0;
    int32_t rows = 1;
    bool pad = false;
};

struct Step {
    std::vector<SeqSpec> seqs;
    int block_size = 16;
    int32_t max_blocks = 0;
    int64_t n_blocks = 0;  // pool blocks; block 0 stays zero
    int64_t n_tokens = 0;
    std::vector<int32_t> token_pos, token_seq, qsl, seq_lens, tables, slots;
    std::vector<int32_t> hist_slots;  // slot of every history position, sequence by sequence
    int32_t max_query_len = 0;
    bool all_decode = false;
    // Device copies of the arrays (for the GPU's StepBatch).
    int32_t *d_pos = nullptr, *d_seq = nullptr, *d_qsl = nullptr, *d_lens = nullptr, *d_tables = nullptr,
            *d_slots = nullptr;

    int32_t slot_of(int s, int32_t pos) const {
        return tables[size_t(s) * size_t(max_blocks) + size_t(pos / block_size)] * block_size + pos % block_size;
    }
    StepBatch batch(bool device) const {
        StepBatch b;
        b.n_tokens = n_tokens;
        b.n_seqs = int32_t(seqs.size());
        b.token_pos = device ? d_pos : token_pos.data();
        b.token_seq = device ? d_seq : token_seq.data();
        b.query_start_loc = device ? d_qsl : qsl.data();
        b.seq_lens = device ? d_lens : seq_lens.data();
        b.block_tables = device ? d_tables : tables.data();
        b.max_blocks = max_blocks;
        b.slot_mapping = device ? d_slots : slots.data();
        b.max_query_len = max_query_len;
        b.all_decode = all_decode;
        return b;
    }
    // Uploads the host arrays into the device copies (allocated on first use; same pointers afterwards, so a
    // captured graph sees the new contents).
    void upload() {
        auto put = [](int32_t*& d, const std::vector<int32_t>& h) {
            if (!d) d = static_cast<int32_t*>(gpu().alloc(std::max<size_t>(1, h.size()) * 4, "test step"));
            gpu().upload(d, h.data(), h.size() * 4);
        };
        put(d_pos, token_pos);
        put(d_seq, token_seq);
        put(d_qsl, qsl);
        put(d_lens, seq_lens);
        put(d_tables, tables);
        put(d_slots, slots);
    }
};

// Blocks of every real sequence, shuffled across the pool [1, n_blocks) (interleaving sequences; in order when not
// `shuffle`); table entries past a sequence's blocks point at block 0. max_blocks = the longest sequence's blocks +
// extra_blocks; spare_blocks unused blocks are added to the pool.
inline Step make_step(const std::vector<SeqSpec>& seqs, int32_t extra_blocks, std::mt19937& rng,
                      int64_t spare_blocks = 3, bool shuffle = true) {
    Step st;
    st.seqs = seqs;
    const int bs = st.block_size;
    std::vector<std::pair<int, int32_t>> owned;  // (sequence, logical block)
    int32_t need_max = 1;
    for (size_t s = 0; s < seqs.size(); ++s) {
        if (seqs[s].pad) continue;
        const int32_t nb = (seqs[s].ctx + seqs[s].rows + bs - 1) / bs;
        need_max = std::max(need_max, nb);
        for (int32_t j = 0; j < nb; ++j) owned.emplace_back(int(s), j);
    }
    if (shuffle) std::shuffle(owned.begin(), owned.end(), rng);
    st.max_blocks = need_max + extra_blocks;
    st.n_blocks = 1 + int64_t(owned.size()) + spare_blocks;
    std::vector<int32_t> phys(size_t(st.n_blocks - 1));
    std::iota(phys.begin(), phys.end(), 1);
    if (shuffle) std::shuffle(phys.begin(), phys.end(), rng);  // the first owned.size() are used, spares anywhere
    st.tables.assign(seqs.size() * size_t(st.max_blocks), 0);
    for (size_t i = 0; i < owned.size(); ++i)
        st.tables[size_t(owned[i].first) * size_t(st.max_blocks) + size_t(owned[i].second)] = phys[i];
    st.qsl.push_back(0);
    for (size_t s = 0; s < seqs.size(); ++s) {
        const SeqSpec& q = seqs[s];
        const int32_t rows = q.pad ? 1 : q.rows;
        for (int32_t r = 0; r < rows; ++r) {
            const int32_t pos = q.pad ? 0 : q.ctx + r;
            st.token_pos.push_back(pos);
            st.token_seq.push_back(int32_t(s));
            st.slots.push_back(q.pad ? -1 : st.slot_of(int(s), pos));
        }
        if (!q.pad)
            for (int32_t p = 0; p < q.ctx; ++p) st.hist_slots.push_back(st.slot_of(int(s), p));
        st.qsl.push_back(int32_t(st.token_pos.size()));
        st.seq_lens.push_back(q.pad ? 1 : q.ctx + q.rows);
        st.max_query_len = std::max(st.max_query_len, rows);
    }
    st.n_tokens = int64_t(st.token_pos.size());
    st.all_decode = st.max_query_len == 1 && st.n_tokens == int64_t(seqs.size());
    st.upload();
    return st;
}

// One KV pool on both executors (same dtype) and an F32 CPU copy.
struct Pool {
    KVCacheView g, c, c32;
    std::vector<uint8_t> ck, cv;
    std::vector<float> c32k, c32v;
    size_t bytes = 0;
};

inline Pool make_pool(DType dt, int64_t n_blocks, int n_kv, int hd) {
    Pool p;
    KVCacheView v;
    v.dtype = dt;
    v.n_blocks = n_blocks;
    v.n_kv_heads = n_kv;
    v.head_dim = hd;
    v.block_size = 16;
    if (dt == DType::F8_E4M3) v.k_scale = 0.0125f, v.v_scale = 0.01f;
    const size_t elems = size_t(n_blocks) * 16 * size_t(n_kv) * size_t(hd);
    p.bytes = elems * dtype_size(dt);
    p.ck.assign(p.bytes, 0);
    p.cv.assign(p.bytes, 0);
    p.c = v;
    p.c.k = p.ck.data();
    p.c.v = p.cv.data();
    p.g = v;
    p.g.k = gpu().alloc(p.bytes, "test K pool");
    p.g.v = gpu().alloc(p.bytes, "test V pool");
    p.c32k.assign(elems, 0.f);
    p.c32v.assign(elems, 0.f);
    p.c32 = v;
    p.c32.dtype = DType::F32;
    p.c32.k = p.c32k.data();
    p.c32.v = p.c32v.data();
    p.c32.k_scale = p.c32.v_scale = 1.f;
    return p;
}

// Writes rows of k / v (row stride `stride`) to `slots` in all three pools (CPU and GPU kv_store).
inline void store_rows(Pool& p, const std::vector<float>& k, const std::vector<float>& v, int64_t stride,
                       const std::vector<int32_t>& slots) {
    const int64_t n = int64_t(slots.size());
    if (n == 0) return;
    cpu().kv_store(p.c, k.data(), stride, v.data(), stride, slots.data(), n);
    cpu().kv_store(p.c32, k.data(), stride, v.data(), stride, slots.data(), n);
    gpu().kv_store(p.g, to_dev(k), stride, to_dev(v), stride, to_dev(slots), n);
}

}  // namespace imp::cuda_test
