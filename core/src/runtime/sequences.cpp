#include "runtime/sequences.h"

#include <algorithm>

#include "imp/error.h"

namespace imp {

SequenceTable::SequenceTable(int max_seqs, int64_t max_len, int64_t n_blocks, int block_size)
    : seqs_(size_t(std::max(max_seqs, 0))), max_len_(max_len), n_blocks_(n_blocks), block_size_(block_size) {
    if (max_seqs <= 0) throw Error("max_seqs must be positive, got " + std::to_string(max_seqs));
    if (block_size <= 0 || max_len <= 0) throw Error("sequence table: bad block size or length");
    if (n_blocks < 2) throw Error("KV pool of " + std::to_string(n_blocks) + " blocks (one is reserved)");
    max_blocks_ = int((max_len + block_size - 1) / block_size);
    free_.reserve(size_t(n_blocks - 1));
    for (int64_t b = n_blocks - 1; b >= 1; --b) free_.push_back(int32_t(b));  // pops 1, 2, 3, ... first
}

int SequenceTable::live() const {
    return int(std::count_if(seqs_.begin(), seqs_.end(), [](const Seq& s) { return s.live; }));
}

int32_t SequenceTable::add() {
    for (size_t i = 0; i < seqs_.size(); ++i)
        if (!seqs_[i].live) {
            seqs_[i] = Seq{};
            seqs_[i].live = true;
            return int32_t(i);
        }
    throw Error("cannot add a sequence: all " + std::to_string(seqs_.size()) +
                " are in use (runtime.max_seqs); release one first");
}

bool SequenceTable::valid(int32_t id) const { return id >= 0 && size_t(id) < seqs_.size() && seqs_[size_t(id)].live; }

const SequenceTable::Seq& SequenceTable::get(int32_t id) const {
    if (!valid(id)) throw Error("unknown sequence id " + std::to_string(id));
    return seqs_[size_t(id)];
}

void SequenceTable::release(int32_t id) {
    get(id);
    Seq& s = seqs_[size_t(id)];
    for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) free_.push_back(*it);
    s = Seq{};
}

int64_t SequenceTable::position(int32_t id) const { return get(id).pos; }

void SequenceTable::reserve(const std::vector<std::pair<int32_t, int64_t>>& grow) {
    int64_t need = 0;
    std::vector<int64_t> end(seqs_.size(), -1);
    for (const auto& [id, n] : grow) {
        const Seq& s = get(id);
        if (n < 0) throw Error("negative token count " + std::to_string(n) + " for sequence " + std::to_string(id));
        int64_t& e = end[size_t(id)];
        if (e < 0) e = s.pos;
        e += n;
        if (e > max_len_)
            throw Error("context overflow: position " + std::to_string(e - n) + " + " + std::to_string(n) +
                        " tokens exceeds the capacity of " + std::to_string(max_len_) + " tokens (max_seq_len)");
    }
    for (size_t i = 0; i < seqs_.size(); ++i)
        if (end[i] >= 0) need += std::max<int64_t>(0, (end[i] + block_size_ - 1) / block_size_ - int64_t(seqs_[i].blocks.size()));
    if (need > int64_t(free_.size()))
        throw Error("KV pool exhausted: this step needs " + std::to_string(need) + " more blocks of " +
                    std::to_string(block_size_) + " positions but " + std::to_string(free_.size()) + " of " +
                    std::to_string(n_blocks_ - 1) + " are free (runtime.kv_blocks); release a sequence or raise it");
    for (size_t i = 0; i < seqs_.size(); ++i) {
        if (end[i] < 0) continue;
        Seq& s = seqs_[i];
        while (int64_t(s.blocks.size()) * block_size_ < end[i]) {
            s.blocks.push_back(free_.back());
            free_.pop_back();
        }
    }
}

void SequenceTable::advance(int32_t id, int64_t n) {
    get(id);
    seqs_[size_t(id)].pos += n;
}

int32_t SequenceTable::slot(int32_t id, int64_t pos) const {
    const Seq& s = get(id);
    const size_t b = size_t(pos / block_size_);
    if (pos < 0 || b >= s.blocks.size())
        throw Error("sequence " + std::to_string(id) + ": position " + std::to_string(pos) + " has no KV block");
    return s.blocks[b] * block_size_ + int32_t(pos % block_size_);
}

void SequenceTable::block_row(int32_t id, int32_t* out) const {
    const Seq& s = get(id);
    std::fill(out, out + max_blocks_, 0);
    std::copy(s.blocks.begin(), s.blocks.end(), out);
}

}  // namespace imp
