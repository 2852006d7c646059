// Sequences an engine holds at once: ids, positions, and the KV blocks each one owns in the shared paged pool.
// Block 0 of the pool is reserved: it is kept zero and every unused block-table entry (and every padding row of a
// captured step) points at it. Recurrent-state slot of a sequence = its id; slot max_seqs is the padding slot.
// Prefix caching (when enabled): every full block a sequence has run is kept under its content and everything before
// it (a hash chain, checked token by token and parent by parent on a hit), also after the sequence is released, until
// its block is needed for new positions (least recently released first). A new sequence starts on the longest chain
// of kept blocks its prompt begins with; blocks are shared read-only (positions only grow, so nobody writes a full
// block again). Kept blocks nobody holds count as free.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace imp {

class SequenceTable {
public:
    // max_seqs sequences at most, each at most max_len positions, over a pool of n_blocks blocks (block 0 reserved)
    // of block_size positions.
    SequenceTable(int max_seqs, int64_t max_len, int64_t n_blocks, int block_size, bool prefix_cache = false);

    int max_seqs() const { return int(seqs_.size()); }
    int64_t max_len() const { return max_len_; }
    int max_blocks() const { return max_blocks_; }  // block-table row length
    int block_size() const { return block_size_; }
    int64_t free_blocks() const { return int64_t(free_.size() + idle_.size()); }  // kept blocks nobody holds too
    bool prefix_cache() const { return cache_; }
    int64_t kept_blocks() const { return int64_t(by_hash_.size()); }  // full blocks a new prompt can start on
    int64_t pool_blocks() const { return n_blocks_; }
    int live() const;

    // A new sequence at position 0 with no blocks; throws imp::Error when max_seqs are held.
    int32_t add();
    // Returns the sequence's blocks to the pool and frees its id; throws for an unknown id.
    void release(int32_t id);
    bool valid(int32_t id) const;
    int64_t position(int32_t id) const;  // throws for an unknown id

    // Checks that every (id, n) of the step can advance by n positions: context limit and enough free blocks for all
    // of them together. Throws imp::Error (context overflow / KV pool exhausted, naming the numbers) before any
    // block is taken; then takes the blocks. Positions advance with advance().
    void reserve(const std::vector<std::pair<int32_t, int64_t>>& grow);
    // tokens (n of them, or null): what the sequence ran at its old position; with prefix caching each block they
    // fill is kept.
    void advance(int32_t id, int64_t n, const int32_t* tokens = nullptr);
    // Prefix caching: a sequence at position 0 with no blocks takes the longest chain of kept blocks that tokens[0, n)
    // begins with, at most (n - 1) / block_size blocks (its last token still runs, for its logits), and moves to the
    // end of them. Returns the positions taken (0 without prefix caching).
    // salt: the chain starts from it, so only sequences with the same salt share blocks (a tenant's or a request's
    // cache_salt; 0 = none).
    int64_t attach_prefix(int32_t id, const int32_t* tokens, int64_t n, uint64_t salt = 0);
    // Tests: the chain hash (prev, a block's tokens) -> hash instead of the keyed one, e.g. a weak one that collides.
    using HashFn = uint64_t (*)(uint64_t prev, const int32_t* tokens, int n);
    void set_hash(HashFn f) { hash_ = f; }
    // Tests: "" when the bookkeeping holds (free, idle and held blocks partition the pool, reference counts equal the
    // holders, every kept block is in the map under its hash and its parent is held or kept), else what is wrong.
    std::string check() const;
    // KV slot of position pos of the sequence (its blocks must cover pos).
    int32_t slot(int32_t id, int64_t pos) const;
    // The sequence's block-table row (max_blocks entries, unused ones 0).
    void block_row(int32_t id, int32_t* out) const;

private:
    struct Seq {
        bool live = false;
        int64_t pos = 0;
        std::vector<int32_t> blocks;
        // Prefix caching: tokens of the block being filled, the chain hash and kept block of the last full one.
        std::vector<int32_t> partial;
        uint64_t chain = 0;
        int32_t last = -1;
        int64_t full = 0;        // full blocks recorded
        bool untracked = false;  // advanced once without its tokens: nothing of it is kept from then on
    };
    struct Block {
        int32_t refs = 0;
        bool kept = false;   // in by_hash_ under `hash`
        uint64_t hash = 0, idle_at = 0;
        int32_t parent = -1;  // kept block before it in its chain (-1: first)
    };
    const Seq& get(int32_t id) const;
    int32_t take_block();     // a free block, else the longest idle kept one (forgotten); refs = 1
    void drop(int32_t b);     // one holder less; at none, to idle_ (kept) or free_
    void record_full(Seq& s);  // s.partial holds a full block: keep it (or take its twin), extend the chain
    uint64_t hash(uint64_t prev, const int32_t* tokens) const;
    bool same(int32_t b, const int32_t* tokens, int32_t parent) const;  // kept block b holds them after parent
    std::vector<Seq> seqs_;
    std::vector<int32_t> free_;  // free block ids (LIFO: a released sequence's blocks are reused first)
    int64_t max_len_ = 0, n_blocks_ = 0;
    int max_blocks_ = 0, block_size_ = 16;
    bool cache_ = false;
    std::vector<Block> meta_;                          // per block (prefix caching)
    std::vector<int32_t> tokens_;                      // block b's tokens at b * block_size (kept blocks)
    std::unordered_map<uint64_t, int32_t> by_hash_;    // chain hash -> kept block
    std::set<std::pair<uint64_t, int32_t>> idle_;      // kept blocks nobody holds, by release time
    uint64_t clock_ = 0;
    uint64_t key_ = 0;        // chain hash key (random per table)
    HashFn hash_ = nullptr;   // tests
};

}  // namespace imp
