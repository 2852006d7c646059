#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/unicode.h"

namespace imp {

namespace {

uint64_t pair_key(int32_t left, int32_t right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }

uint64_t hash_key(uint64_t k) {
    k ^= k >> 29;
    k *= 0xBF58476D1CE4E5B9ull;
    k ^= k >> 32;
    return k;
}

// Heap order: lowest rank first, then leftmost.
struct CandLess {
    bool operator()(const Bpe::Work::Cand& a, const Bpe::Work::Cand& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

Bpe::Bpe(const std::vector<std::string>& tokens, const std::vector<std::string>& merges, bool ignore_merges,
         int32_t unk_id)
    : ignore_merges_(ignore_merges) {
    ids_.reserve(tokens.size() * 2);
    for (size_t i = 0; i < tokens.size(); ++i) ids_.emplace(tokens[i], int32_t(i));  // first id wins on duplicates

    size_t cap = 16;
    while (cap < merges.size() * 2) cap <<= 1;
    table_.assign(cap, Slot{kEmpty, 0, 0});
    mask_ = cap - 1;
    std::string joined;
    for (size_t r = 0; r < merges.size(); ++r) {
        const std::string& m = merges[r];
        const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
        if (sp == std::string::npos) continue;
        const int32_t a = find(std::string_view(m).substr(0, sp));
        const int32_t b = find(std::string_view(m).substr(sp + 1));
        joined.assign(m, 0, sp);
        joined.append(m, sp + 1);
        const int32_t ab = find(joined);
        if (a < 0 || b < 0 || ab < 0 || lookup(a, b)) continue;
        insert(a, b, int32_t(r), ab);
        ++n_merges_;
    }

    std::string s;
    for (int b = 0; b < 256; ++b) {
        s.clear();
        unicode::append_utf8(s, unicode::byte_to_cp(uint8_t(b)));
        byte_id_[b] = find(s);
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        const int32_t hex_id = find(hex);
        fallback_id_[b] = byte_id_[b] >= 0 ? byte_id_[b] : hex_id >= 0 ? hex_id : unk_id;
    }
}

int32_t Bpe::find(std::string_view encoded) const {
    auto it = ids_.find(std::string(encoded));
    return it == ids_.end() ? -1 : it->second;
}

const Bpe::Slot* Bpe::lookup(int32_t left, int32_t right) const {
    const uint64_t key = pair_key(left, right);
    for (uint64_t i = hash_key(key) & mask_;; i = (i + 1) & mask_) {
        const Slot& s = table_[i];
        if (s.key == key) return &s;
        if (s.key == kEmpty) return nullptr;
    }
}

void Bpe::insert(int32_t left, int32_t right, int32_t rank, int32_t id) {
    const uint64_t key = pair_key(left, right);
    uint64_t i = hash_key(key) & mask_;
    while (table_[i].key != kEmpty) i = (i + 1) & mask_;
    table_[i] = Slot{key, rank, id};
}

void Bpe::emit_bytes(std::string_view bytes, std::vector<int32_t>& out) const {
    for (unsigned char b : bytes)
        if (fallback_id_[b] >= 0) out.push_back(fallback_id_[b]);
}

void Bpe::push_pair(Work& w, int32_t left) const {
    const Work::Sym& l = w.syms[left];
    if (l.next < 0 || l.id < 0) return;
    const Work::Sym& r = w.syms[l.next];
    if (r.id < 0) return;
    const Slot* s = lookup(l.id, r.id);
    if (!s) return;
    w.heap.push_back({s->rank, left, l.next, s->id, l.len, r.len});
    std::push_heap(w.heap.begin(), w.heap.end(), CandLess{});
}

void Bpe::encode(std::string_view piece, Work& w, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    if (n == 0) return;
    if (n == 1) {
        emit_bytes(piece, out);
        return;
    }
    if (ignore_merges_) {
        w.enc.clear();
        for (unsigned char b : piece) unicode::append_utf8(w.enc, unicode::byte_to_cp(b));
        auto it = ids_.find(w.enc);
        if (it != ids_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    w.syms.resize(n);
    for (size_t k = 0; k < n; ++k)
        w.syms[k] = {byte_id_[static_cast<unsigned char>(piece[k])], int32_t(k) - 1,
                     k + 1 < n ? int32_t(k + 1) : -1, 1};
    w.heap.clear();
    for (size_t k = 0; k + 1 < n; ++k) push_pair(w, int32_t(k));
    while (!w.heap.empty()) {
        std::pop_heap(w.heap.begin(), w.heap.end(), CandLess{});
        const Work::Cand c = w.heap.back();
        w.heap.pop_back();
        Work::Sym& l = w.syms[c.left];
        // Stale if either side was merged since: symbols only grow, so equal lengths mean the same pair.
        if (l.len != c.llen || l.next != c.right || w.syms[c.right].len != c.rlen) continue;
        Work::Sym& r = w.syms[c.right];
        l.id = c.id;
        l.len += r.len;
        l.next = r.next;
        r.len = 0;
        if (l.next >= 0) w.syms[l.next].prev = c.left;
        if (l.prev >= 0) push_pair(w, l.prev);
        push_pair(w, c.left);
    }
    for (int32_t k = 0; k >= 0; k = w.syms[k].next) {
        if (w.syms[k].id >= 0) out.push_back(w.syms[k].id);
        else emit_bytes(piece.substr(size_t(k), w.syms[k].len), out);
    }
}

}  // namespace imp
