#include "runtime/sequences.h"

#include <algorithm>
#include <random>

#include "imp/error.h"

namespace imp {

namespace {

// The chain hash of a block: its tokens after the hash of everything before it (0 for the first block).
uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}
uint64_t chain_hash(uint64_t prev, const int32_t* t, int n, uint64_t key) {
    uint64_t h = mix(prev, key);
    for (int i = 0; i < n; ++i) h = mix(h, uint64_t(uint32_t(t[i])));
    return h;
}

// A key per table from the OS's entropy: the chain hashes cannot be predicted, so a prompt cannot be built to collide
// with another's block (hits are also checked token by token and parent by parent).
uint64_t random_key() {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ uint64_t(rd()) ^ 0x5EED0F1B10C4ull;
}

}  // namespace

SequenceTable::SequenceTable(int max_seqs, int64_t max_len, int64_t n_blocks, int block_size, bool prefix_cache)
    : seqs_(size_t(std::max(max_seqs, 0))), max_len_(max_len), n_blocks_(n_blocks), block_size_(block_size),
      cache_(prefix_cache), key_(prefix_cache ? random_key() : 0) {
    if (max_seqs <= 0) throw Error("max_seqs must be positive, got " + std::to_string(max_seqs));
    if (block_size <= 0 || max_len <= 0) throw Error("sequence table: bad block size or length");
    if (n_blocks < 2) throw Error("KV pool of " + std::to_string(n_blocks) + " blocks (one is reserved)");
    max_blocks_ = int((max_len + block_size - 1) / block_size);
    free_.reserve(size_t(n_blocks - 1));
    for (int64_t b = n_blocks - 1; b >= 1; --b) free_.push_back(int32_t(b));  // pops 1, 2, 3, ... first
    if (cache_) {
        meta_.resize(size_t(n_blocks));
        tokens_.resize(size_t(n_blocks) * size_t(block_size));
    }
}

int32_t SequenceTable::take_block() {
    int32_t b;
    if (!free_.empty()) {
        b = free_.back();
        free_.pop_back();
    } else {  // (reserve() checked free_blocks()): the kept block idle the longest is forgotten
        b = idle_.begin()->second;
        idle_.erase(idle_.begin());
        Block& m = meta_[size_t(b)];
        by_hash_.erase(m.hash);
        m = Block{};
    }
    if (cache_) meta_[size_t(b)].refs = 1;
    return b;
}

void SequenceTable::drop(int32_t b) {
    if (!cache_) {
        free_.push_back(b);
        return;
    }
    Block& m = meta_[size_t(b)];
    if (--m.refs > 0) return;
    if (m.kept) {
        m.idle_at = ++clock_;
        idle_.insert({m.idle_at, b});
    } else {
        free_.push_back(b);
    }
}

uint64_t SequenceTable::hash(uint64_t prev, const int32_t* t) const {
    return hash_ ? hash_(prev, t, block_size_) : chain_hash(prev, t, block_size_, key_);
}

bool SequenceTable::same(int32_t b, const int32_t* t, int32_t parent) const {
    return meta_[size_t(b)].parent == parent &&
           std::equal(t, t + block_size_, tokens_.begin() + std::ptrdiff_t(b) * block_size_);
}

void SequenceTable::record_full(Seq& s) {
    const int32_t b = s.blocks[size_t(s.full)];
    const uint64_t h = hash(s.chain, s.partial.data());
    const auto it = by_hash_.find(h);
    if (it != by_hash_.end()) {
        const int32_t t = it->second;
        if (!same(t, s.partial.data(), s.last)) {  // a hash collision: keep nothing more of this sequence
            s.untracked = true;
            s.partial.clear();
            return;
        }
        // A twin (the same chain run by another sequence): the sequence holds the kept block instead of its own
        // copy, so whoever holds a kept block holds its whole chain (parents are never forgotten before children).
        Block& m = meta_[size_t(t)];
        if (m.refs++ == 0) idle_.erase({m.idle_at, t});
        drop(b);
        s.blocks[size_t(s.full)] = t;
        s.last = t;
    } else {
        Block& m = meta_[size_t(b)];
        m.kept = true;
        m.hash = h;
        m.parent = s.last;
        std::copy(s.partial.begin(), s.partial.end(), tokens_.begin() + std::ptrdiff_t(b) * block_size_);
        by_hash_.emplace(h, b);
        s.last = b;
    }
    s.chain = h;
    s.partial.clear();
    ++s.full;
}

int64_t SequenceTable::attach_prefix(int32_t id, const int32_t* tokens, int64_t n, uint64_t salt) {
    get(id);
    Seq& s = seqs_[size_t(id)];
    if (s.pos != 0 || !s.blocks.empty())
        throw Error("attach_prefix: sequence " + std::to_string(id) + " has already run " + std::to_string(s.pos) +
                    " tokens");
    if (!cache_) return 0;
    s.chain = salt;  // the chain of this sequence's blocks starts from its salt (0: shared with every unsalted one)
    if (n <= 1) return 0;
    const int64_t most = std::min((n - 1) / block_size_, int64_t(max_blocks_));
    for (int64_t i = 0; i < most; ++i) {
        const int32_t* t = tokens + i * block_size_;
        const uint64_t h = hash(s.chain, t);
        const auto it = by_hash_.find(h);
        if (it == by_hash_.end()) break;
        const int32_t b = it->second;
        Block& m = meta_[size_t(b)];
        if (!same(b, t, s.last)) break;  // a hash collision: not this chain
        if (m.refs++ == 0) idle_.erase({m.idle_at, b});
        s.blocks.push_back(b);
        s.chain = h;
        s.last = b;
        ++s.full;
    }
    s.pos = s.full * block_size_;
    return s.pos;
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
    for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) drop(*it);
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
    if (need > free_blocks())
        throw Error("KV pool exhausted: this step needs " + std::to_string(need) + " more blocks of " +
                    std::to_string(block_size_) + " positions but " + std::to_string(free_blocks()) + " of " +
                    std::to_string(n_blocks_ - 1) + " are free (runtime.kv_blocks); release a sequence or raise it");
    for (size_t i = 0; i < seqs_.size(); ++i) {
        if (end[i] < 0) continue;
        Seq& s = seqs_[i];
        while (int64_t(s.blocks.size()) * block_size_ < end[i]) s.blocks.push_back(take_block());
    }
}

void SequenceTable::advance(int32_t id, int64_t n, const int32_t* tokens) {
    get(id);
    Seq& s = seqs_[size_t(id)];
    s.pos += n;
    if (!cache_ || s.untracked) return;
    if (!tokens) {
        s.untracked = true;
        s.partial.clear();
        return;
    }
    for (int64_t i = 0; i < n; ++i) {
        s.partial.push_back(tokens[i]);
        if (int64_t(s.partial.size()) == block_size_) record_full(s);
        if (s.untracked) return;
    }
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

std::string SequenceTable::check() const {
    const auto err = [](int64_t b, const std::string& what) { return "block " + std::to_string(b) + ": " + what; };
    std::vector<int32_t> holders(size_t(n_blocks_), 0), in_free(size_t(n_blocks_), 0);
    for (const Seq& s : seqs_)
        if (s.live)
            for (int32_t b : s.blocks) {
                if (b <= 0 || b >= n_blocks_) return err(b, "out of the pool in a block table");
                ++holders[size_t(b)];
            }
    for (int32_t b : free_) {
        if (b <= 0 || b >= n_blocks_) return err(b, "out of the pool in the free list");
        if (in_free[size_t(b)]++) return err(b, "twice in the free list");
    }
    if (!cache_) {
        for (int64_t b = 1; b < n_blocks_; ++b)
            if ((holders[size_t(b)] > 0) + in_free[size_t(b)] != 1) return err(b, "neither free nor held, or both");
        return "";
    }
    int64_t kept = 0;
    for (int64_t b = 1; b < n_blocks_; ++b) {
        const Block& m = meta_[size_t(b)];
        const bool idle = idle_.count({m.idle_at, int32_t(b)}) > 0;
        if (m.refs != holders[size_t(b)])
            return err(b, std::to_string(m.refs) + " references, " + std::to_string(holders[size_t(b)]) + " holders");
        if ((m.refs > 0) + in_free[size_t(b)] + idle != 1) return err(b, "not exactly one of held, free, idle");
        if (in_free[size_t(b)] && m.kept) return err(b, "free but kept");
        if (idle && !m.kept) return err(b, "idle but not kept");
        if (!m.kept) continue;
        ++kept;
        const auto it = by_hash_.find(m.hash);
        if (it == by_hash_.end() || it->second != b) return err(b, "kept but not found under its hash");
        if (m.parent >= 0) {
            const Block& p = meta_[size_t(m.parent)];
            if (!p.kept) return err(b, "its parent " + std::to_string(m.parent) + " is not kept");
            if (m.refs > 0 && p.refs == 0) return err(b, "held while its parent is not");
            if (idle && p.refs == 0 && p.idle_at < m.idle_at) return err(b, "idle after its parent");
        }
    }
    if (kept != int64_t(by_hash_.size())) return "the hash map holds blocks that are not kept";
    if (int64_t(idle_.size()) + int64_t(free_.size()) + std::count_if(holders.begin(), holders.end(),
                                                                     [](int32_t h) { return h > 0; }) !=
        n_blocks_ - 1)
        return "free, idle and held blocks do not add up to the pool";
    return "";
}

}  // namespace imp
