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
         int32_t unk_id) {
    opt_.ignore_merges = ignore_merges;
    opt_.unk_id = unk_id;
    std::vector<std::pair<std::string, std::string>> pairs;
    pairs.reserve(merges.size());
    for (const std::string& m : merges) {
        const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
        if (sp == std::string::npos) pairs.emplace_back();  // keeps the ranks of the others
        else pairs.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    init(tokens, pairs);
}

Bpe::Bpe(const std::vector<std::string>& tokens, const std::vector<std::pair<std::string, std::string>>& merges,
         const Options& opt)
    : opt_(opt) {
    init(tokens, merges);
}

void Bpe::init(const std::vector<std::string>& tokens, const std::vector<std::pair<std::string, std::string>>& merges) {
    ids_.reserve(tokens.size() * 2);
    for (size_t i = 0; i < tokens.size(); ++i)
        if (!tokens[i].empty()) ids_.emplace(tokens[i], int32_t(i));  // first id wins on duplicates

    size_t cap = 16;
    while (cap < merges.size() * 2) cap <<= 1;
    table_.assign(cap, Slot{kEmpty, 0, 0});
    mask_ = cap - 1;
    std::string joined;
    for (size_t r = 0; r < merges.size(); ++r) {
        const auto& [l, rt] = merges[r];
        if (l.empty() || rt.empty()) continue;
        const int32_t a = find(l);
        const int32_t b = find(rt);
        joined = l + rt;
        const int32_t ab = find(joined);
        if (a < 0 || b < 0 || ab < 0) continue;
        // A pair listed twice takes its last rank, as tokenizers' merge map (later entries overwrite) does.
        if (!lookup(a, b)) ++n_merges_;
        insert(a, b, int32_t(r), ab);
    }

    std::string s;
    for (int b = 0; b < 256; ++b) {
        s.clear();
        unicode::append_utf8(s, unicode::byte_to_cp(uint8_t(b)));
        byte_id_[b] = opt_.byte_level ? find(s) : -1;
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        const int32_t hex_id = opt_.byte_fallback ? find(hex) : -1;
        fallback_id_[b] = byte_id_[b] >= 0 ? byte_id_[b] : hex_id >= 0 ? hex_id : opt_.unk_id;
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
    while (table_[i].key != kEmpty && table_[i].key != key) i = (i + 1) & mask_;  // a pair again: its slot, updated
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

void Bpe::merge_all(Work& w) const {
    w.heap.clear();
    for (size_t k = 0; k + 1 < w.syms.size(); ++k) push_pair(w, int32_t(k));
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
}

void Bpe::encode(std::string_view piece, Work& w, std::vector<int32_t>& out) const {
    if (!opt_.byte_level) {
        encode_chars(piece, w, out);
        return;
    }
    const size_t n = piece.size();
    if (n == 0) return;
    if (n == 1) {
        emit_bytes(piece, out);
        return;
    }
    if (opt_.ignore_merges) {
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
    merge_all(w);
    for (int32_t k = 0; k >= 0; k = w.syms[k].next) {
        if (w.syms[k].id >= 0) out.push_back(w.syms[k].id);
        else emit_bytes(piece.substr(size_t(k), w.syms[k].len), out);
    }
}

// Character symbols: sym index = byte offset of the character (so lengths and offsets stay in bytes).
void Bpe::encode_chars(std::string_view piece, Work& w, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    if (n == 0) return;
    if (opt_.ignore_merges)
        if (auto it = ids_.find(std::string(piece)); it != ids_.end()) {
            out.push_back(it->second);
            return;
        }
    w.syms.assign(n, Work::Sym{-1, -1, -1, 0});
    int32_t prev = -1;
    for (size_t i = 0; i < n;) {
        int len = 1;
        unicode::decode_utf8(piece, i, &len);
        w.syms[i] = {find(piece.substr(i, size_t(len))), prev, -1, uint32_t(len)};
        if (prev >= 0) w.syms[size_t(prev)].next = int32_t(i);
        prev = int32_t(i);
        i += size_t(len);
    }
    // push_pair walks `next` links, so the gaps (continuation bytes, len 0) are never visited.
    merge_all(w);
    bool last_unk = false;
    for (int32_t k = 0; k >= 0; k = w.syms[k].next) {
        if (w.syms[k].id >= 0) {
            out.push_back(w.syms[k].id);
            last_unk = false;
            continue;
        }
        // An unknown character: its bytes as <0xXX> tokens when all exist, else one unk (fused with a previous one).
        const std::string_view ch = piece.substr(size_t(k), w.syms[k].len);
        bool bytes = opt_.byte_fallback;
        for (unsigned char b : ch) bytes = bytes && fallback_id_[b] >= 0 && fallback_id_[b] != opt_.unk_id;
        if (bytes) {
            emit_bytes(ch, out);
            last_unk = false;
        } else if (opt_.unk_id >= 0 && !(opt_.fuse_unk && last_unk)) {
            out.push_back(opt_.unk_id);
            last_unk = true;
        }
    }
}

}  // namespace imp
