// BPE: merges ranked by their index, applied lowest rank first (leftmost on ties) with a priority queue. Byte-level
// vocabularies (GPT-2 style, "Ġthe") start from one symbol per byte; character vocabularies (SentencePiece style,
// "▁the", with optional <0xXX> byte fallback) start from one symbol per UTF-8 character.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace imp {

class Bpe {
public:
    // `tokens` are the vocab texts in byte-level form ("Ġthe"); `merges` are "left right" (split at the first space
    // after index 0; the list index is the rank). Merges whose parts or result are not in the vocab are skipped.
    // Bytes whose byte-level character is not in the vocab fall back to a "<0xXX>" token, else to `unk_id`, else
    // they are dropped.
    Bpe(const std::vector<std::string>& tokens, const std::vector<std::string>& merges, bool ignore_merges,
        int32_t unk_id);

    struct Options {
        bool byte_level = true;     // false: symbols are UTF-8 characters of the vocab text itself
        bool ignore_merges = false;
        bool byte_fallback = true;  // a symbol without an id becomes <0xXX> tokens (else unk)
        int32_t unk_id = -1;
        bool fuse_unk = false;      // consecutive unknown characters give one unk
    };
    // Merges given as (left, right) pairs, as tokenizer.json may hold them (parts can contain spaces).
    Bpe(const std::vector<std::string>& tokens, const std::vector<std::pair<std::string, std::string>>& merges,
        const Options& opt);

    // Scratch buffers, reused across pieces (one per encode call; not shared between threads).
    struct Work {
        struct Sym {
            int32_t id, prev, next;
            uint32_t len;
        };
        struct Cand {
            int32_t rank, left, right, id;
            uint32_t llen, rlen;
        };
        std::vector<Sym> syms;
        std::vector<Cand> heap;
        std::string enc;
    };

    // Encodes one pre-token (raw bytes; for a character vocab, text already in the vocab's form) and appends its ids.
    void encode(std::string_view piece, Work& w, std::vector<int32_t>& out) const;
    int32_t find(std::string_view encoded) const;  // id of a token text as the vocab stores it, -1 if absent
    size_t n_merges() const { return n_merges_; }

private:
    struct Slot {
        uint64_t key;  // left id << 32 | right id; kEmpty marks a free slot
        int32_t rank, id;
    };
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    const Slot* lookup(int32_t left, int32_t right) const;
    void insert(int32_t left, int32_t right, int32_t rank, int32_t id);
    void emit_bytes(std::string_view bytes, std::vector<int32_t>& out) const;
    void push_pair(Work& w, int32_t left) const;

    void init(const std::vector<std::string>& tokens, const std::vector<std::pair<std::string, std::string>>& merges);
    void encode_chars(std::string_view piece, Work& w, std::vector<int32_t>& out) const;
    void merge_all(Work& w) const;

    Options opt_;
    std::unordered_map<std::string, int32_t> ids_;
    std::vector<Slot> table_;  // open addressing, power-of-two size
    uint64_t mask_ = 0;
    size_t n_merges_ = 0;
    std::array<int32_t, 256> byte_id_{};      // id of each byte's byte-level character, -1 if absent
    std::array<int32_t, 256> fallback_id_{};  // what to emit for a byte that ends up alone without an id
};

}  // namespace imp
