#include "tokenizer/spm.h"

#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace imp {

Spm::Spm(const std::vector<std::string>& tokens, const std::vector<float>& scores, int32_t unk_id)
    : tokens_(tokens), scores_(scores), unk_(unk_id) {
    scores_.resize(tokens_.size(), 0.0f);
    ids_.reserve(tokens_.size() * 2);
    for (size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], int32_t(i));  // first id wins
    for (int b = 0; b < 256; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "<0x%02X>", b);
        byte_id_[size_t(b)] = find(hex);
    }
}

int32_t Spm::find(std::string_view s) const {
    auto it = ids_.find(s);
    return it == ids_.end() ? -1 : it->second;
}

void Spm::encode(std::string_view text, std::vector<int32_t>& out) const {
    struct Sym {
        int32_t prev, next;
        uint32_t begin, len;
    };
    struct Bigram {
        int32_t left, right;
        float score;
        uint32_t len;
        bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
    };
    std::vector<Sym> syms;
    for (size_t i = 0; i < text.size();) {
        int len = 1;
        unicode::decode_utf8(text, i, &len);
        const int32_t idx = int32_t(syms.size());
        syms.push_back({idx - 1, -1, uint32_t(i), uint32_t(len)});
        if (idx > 0) syms[size_t(idx) - 1].next = idx;
        i += size_t(len);
    }
    std::priority_queue<Bigram> q;
    auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const uint32_t len = syms[size_t(l)].len + syms[size_t(r)].len;
        const int32_t id = find(text.substr(syms[size_t(l)].begin, len));
        if (id < 0) return;
        q.push({l, r, scores_[size_t(id)], len});
    };
    for (int32_t i = 1; i < int32_t(syms.size()); ++i) try_add(i - 1, i);
    while (!q.empty()) {
        const Bigram b = q.top();
        q.pop();
        Sym& l = syms[size_t(b.left)];
        Sym& r = syms[size_t(b.right)];
        if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;  // stale
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) syms[size_t(r.next)].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
    }
    for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[size_t(i)].next) {
        const std::string_view s = text.substr(syms[size_t(i)].begin, syms[size_t(i)].len);
        if (const int32_t id = find(s); id >= 0) {
            out.push_back(id);
            continue;
        }
        for (unsigned char c : s) {
            if (byte_id_[c] >= 0)
                out.push_back(byte_id_[c]);
            else if (unk_ >= 0)
                out.push_back(unk_);
        }
    }
}

}  // namespace imp
