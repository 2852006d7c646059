// Sequences an engine holds at once: ids, positions, and the KV blocks each one owns in the shared paged pool.
// Block 0 of the pool is reserved: it is kept zero and every unused block-table entry (and every padding row of a
// captured step) points at it. Recurrent-state slot of a sequence = its id; slot max_seqs is the padding slot.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace imp {

class SequenceTable {
public:
    // max_seqs sequences at most, each at most max_len positions, over a pool of n_blocks blocks (block 0 reserved)
    // of block_size positions.
    SequenceTable(int max_seqs, int64_t max_len, int64_t n_blocks, int block_size);

    int max_seqs() const { return int(seqs_.size()); }
    int64_t max_len() const { return max_len_; }
    int max_blocks() const { return max_blocks_; }  // block-table row length
    int block_size() const { return block_size_; }
    int64_t free_blocks() const { return int64_t(free_.size()); }
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
    void advance(int32_t id, int64_t n);
    // KV slot of position pos of the sequence (its blocks must cover pos).
    int32_t slot(int32_t id, int64_t pos) const;
    // The sequence's block-table row (max_blocks entries, unused ones 0).
    void block_row(int32_t id, int32_t* out) const;

private:
    struct Seq {
        bool live = false;
        int64_t pos = 0;
        std::vector<int32_t> blocks;
    };
    const Seq& get(int32_t id) const;
    std::vector<Seq> seqs_;
    std::vector<int32_t> free_;  // free block ids (LIFO: a released sequence's blocks are reused first)
    int64_t max_len_ = 0, n_blocks_ = 0;
    int max_blocks_ = 0, block_size_ = 16;
};

}  // namespace imp
