// SequenceTable's prefix caching: full blocks a sequence ran are found again by later sequences whose tokens begin the
// same way (and only then: a different earlier block, or a last token left to run, stops the match); shared blocks
// are held by reference; kept blocks nobody holds count as free and are reused least recently released first; without
// prefix caching nothing is kept.
#include <catch2/catch.hpp>

#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "imp/error.h"
#include "runtime/sequences.h"

using imp::SequenceTable;

namespace {

constexpr int kB = 4;  // block size of these tables

std::vector<int32_t> iota(int n, int32_t first) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    std::iota(v.begin(), v.end(), first);
    return v;
}

// Runs tokens through a fresh sequence (blocks reserved, positions advanced with the tokens); returns its id.
int32_t run(SequenceTable& t, const std::vector<int32_t>& toks, int64_t from = 0) {
    const int32_t id = t.add();
    const int64_t skip = from ? t.attach_prefix(id, toks.data(), int64_t(toks.size())) : 0;
    const int64_t n = int64_t(toks.size()) - skip;
    t.reserve({{id, n}});
    t.advance(id, n, toks.data() + skip);
    return id;
}

std::vector<int32_t> row(const SequenceTable& t, int32_t id) {
    std::vector<int32_t> r(static_cast<size_t>(t.max_blocks()));
    t.block_row(id, r.data());
    return r;
}

}  // namespace

TEST_CASE("sequences: a prompt starts on the kept blocks of an earlier one that began the same way", "[runtime]") {
    SequenceTable t(4, 64, 20, kB, true);
    REQUIRE(t.prefix_cache());
    const std::vector<int32_t> p = iota(10, 100);  // 2 full blocks + 2 tokens
    const int32_t a = run(t, p);
    CHECK(t.kept_blocks() == 2);
    const auto ra = row(t, a);
    t.release(a);
    CHECK(t.free_blocks() == 19);  // kept blocks nobody holds are free

    // The same prompt: both full blocks, the same block ids; the last two tokens still to run.
    std::vector<int32_t> q = p;
    const int32_t b = t.add();
    CHECK(t.attach_prefix(b, q.data(), int64_t(q.size())) == 8);
    CHECK(t.position(b) == 8);
    CHECK(row(t, b)[0] == ra[0]);
    CHECK(row(t, b)[1] == ra[1]);
    CHECK(t.free_blocks() == 17);

    // Another sequence sharing the first block only; a prompt of exactly two blocks takes one (its last token runs).
    q[5] = 7;
    const int32_t c = t.add();
    CHECK(t.attach_prefix(c, q.data(), int64_t(q.size())) == 4);
    CHECK(row(t, c)[0] == ra[0]);
    const int32_t d = t.add();
    CHECK(t.attach_prefix(d, p.data(), 8) == 4);
    // A different first block: nothing, although its second block's tokens are the same.
    std::vector<int32_t> r = p;
    r[0] = 1;
    const int32_t e = t.add();
    CHECK(t.attach_prefix(e, r.data(), int64_t(r.size())) == 0);
    CHECK_THROWS_WITH(t.attach_prefix(b, p.data(), 10), Catch::Contains("has already run 8 tokens"));
    // Released holders: the shared first block stays held while one holder is left.
    t.release(b);
    t.release(c);
    CHECK(t.free_blocks() == 18);  // d holds the first block
    t.release(d);
    t.release(e);
    CHECK(t.free_blocks() == 19);
}

TEST_CASE("sequences: generated tokens are kept too, blocks fill across steps, twins stay one", "[runtime]") {
    SequenceTable t(4, 64, 20, kB, true);
    const int32_t a = t.add();
    const std::vector<int32_t> toks = iota(9, 1);
    for (int i = 0; i < 9; ++i) {  // one token per step (decode)
        t.reserve({{a, 1}});
        t.advance(a, 1, &toks[size_t(i)]);
    }
    CHECK(t.kept_blocks() == 2);
    // A second sequence running the same 9 tokens at once while a holds its blocks: its own blocks, no new kept.
    const int32_t b = run(t, toks);
    CHECK(t.kept_blocks() == 2);
    CHECK(row(t, b)[0] == row(t, a)[0]);  // b holds a's kept blocks instead of its own copies
    CHECK(row(t, b)[1] == row(t, a)[1]);
    CHECK(row(t, b)[2] != row(t, a)[2]);  // the partial block is its own
    CHECK(t.check() == "");
    t.release(b);
    CHECK(t.free_blocks() == 19 - 3);  // b's own blocks are free again; a holds 3
    // A third finds a's blocks.
    const int32_t c = t.add();
    CHECK(t.attach_prefix(c, toks.data(), 9) == 8);
    CHECK(row(t, c)[1] == row(t, a)[1]);
    // Advancing without tokens stops keeping anything of that sequence.
    const int32_t d = t.add();
    t.reserve({{d, 8}});
    t.advance(d, 8);
    t.reserve({{d, 4}});
    const std::vector<int32_t> more = iota(4, 500);
    t.advance(d, 4, more.data());
    CHECK(t.kept_blocks() == 2);
}

TEST_CASE("sequences: kept blocks are reused least recently released first when the pool runs out", "[runtime]") {
    SequenceTable t(4, 64, 5, kB, true);  // 4 usable blocks
    const int32_t a = run(t, iota(5, 10));  // keeps 1 block (A)
    const int32_t b = run(t, iota(5, 50));  // keeps 1 block (B)
    t.release(a);                           // A idle first
    t.release(b);
    CHECK(t.kept_blocks() == 2);
    CHECK(t.free_blocks() == 4);
    // 3 blocks for a new sequence: 2 free ones, then A (the longest idle) is forgotten.
    const int32_t c = run(t, iota(12, 900));
    CHECK(t.free_blocks() == 1);  // B, idle
    CHECK(t.kept_blocks() == 4);  // B and c's three full blocks (A forgotten)
    t.release(c);
    const int32_t d = t.add();
    const std::vector<int32_t> pa = iota(5, 10), pb = iota(5, 50);
    CHECK(t.attach_prefix(d, pa.data(), 5) == 0);  // A was reused
    t.release(d);
    const int32_t e = t.add();
    CHECK(t.attach_prefix(e, pb.data(), 5) == 4);  // B is still there
    // The pool's limits are unchanged: a step needing more than the free blocks is refused.
    const int32_t f = t.add();
    CHECK_THROWS_WITH(t.reserve({{f, 20}}), Catch::Contains("KV pool exhausted"));
}

TEST_CASE("sequences: without prefix caching nothing is kept and attach takes nothing", "[runtime]") {
    SequenceTable t(2, 64, 10, kB);
    CHECK_FALSE(t.prefix_cache());
    const std::vector<int32_t> p = iota(10, 3);
    t.release(run(t, p));
    CHECK(t.kept_blocks() == 0);
    const int32_t b = t.add();
    CHECK(t.attach_prefix(b, p.data(), 10) == 0);
    CHECK(t.position(b) == 0);
    CHECK(t.free_blocks() == 9);
}

namespace {

// A hash that collides all the time: the table must fall back on its token and parent checks.
uint64_t weak_hash(uint64_t prev, const int32_t* t, int n) {
    uint64_t h = prev * 3 + 1;
    for (int i = 0; i < n; ++i) h += uint64_t(t[i]);
    return h % 5;
}

// Random adds (with a prefix attached), steps and releases over prompts of a two-token alphabet on a small pool,
// the table's check() after every operation, and the KV each position of each sequence would read traced to the
// tokens it was written for: every sequence must only ever read KV of its own prefix.
std::string stress(SequenceTable& t, uint32_t seed, int ops) {
    std::mt19937 rng(seed);
    const int bs = t.block_size();
    std::map<int32_t, std::vector<int32_t>> hist;          // live sequence -> its tokens so far
    std::map<int64_t, std::vector<int32_t>> written;       // KV slot -> the prefix it was computed for
    auto verify = [&](int32_t id) -> std::string {
        const auto& h = hist[id];
        for (int64_t p = 0; p < t.position(id); ++p) {
            const auto it = written.find(t.slot(id, p));
            const std::vector<int32_t> want(h.begin(), h.begin() + p + 1);
            if (it == written.end() || it->second != want)
                return "sequence " + std::to_string(id) + " reads position " + std::to_string(p) + " of another prefix";
        }
        return "";
    };
    for (int op = 0; op < ops; ++op) {
        const int kind = int(rng() % 3);
        if (kind == 0 && t.live() < t.max_seqs()) {  // a new sequence with a prompt, started on kept blocks
            std::vector<int32_t> prompt(1 + rng() % 11);
            for (auto& x : prompt) x = int32_t(rng() % 2);
            const int32_t id = t.add();
            const int64_t skip = t.attach_prefix(id, prompt.data(), int64_t(prompt.size()));
            if (skip % bs || skip >= int64_t(prompt.size())) return "attach took " + std::to_string(skip);
            hist[id] = std::vector<int32_t>(prompt.begin(), prompt.begin() + skip);
            if (auto e = verify(id); !e.empty()) return "after attach: " + e;
            const std::vector<int32_t> rest(prompt.begin() + skip, prompt.end());
            try {
                t.reserve({{id, int64_t(rest.size())}});
            } catch (const imp::Error&) {
                t.release(id);
                hist.erase(id);
                continue;
            }
            for (size_t i = 0; i < rest.size(); ++i) {  // the step writes these positions' KV
                hist[id].push_back(rest[i]);
                written[t.slot(id, t.position(id) + int64_t(i))] = hist[id];
            }
            t.advance(id, int64_t(rest.size()), rest.data());
        } else if (kind == 1 && !hist.empty()) {  // a decode step of one sequence
            auto it = hist.begin();
            std::advance(it, rng() % hist.size());
            const int32_t id = it->first, tok = int32_t(rng() % 2);
            try {
                t.reserve({{id, 1}});
            } catch (const imp::Error&) {
                continue;  // context or pool full
            }
            it->second.push_back(tok);
            written[t.slot(id, t.position(id))] = it->second;
            t.advance(id, 1, &tok);
        } else if (!hist.empty()) {
            auto it = hist.begin();
            std::advance(it, rng() % hist.size());
            t.release(it->first);
            hist.erase(it);
        }
        if (auto e = t.check(); !e.empty()) return "op " + std::to_string(op) + ": " + e;
        for (const auto& [id, h] : hist)
            if (auto e = verify(id); !e.empty()) return "op " + std::to_string(op) + ": " + e;
    }
    return "";
}

}  // namespace

TEST_CASE("sequences: random traffic never reads another prefix's KV, even with a colliding hash", "[runtime]") {
    for (uint32_t seed = 1; seed <= 40; ++seed) {
        INFO("seed " << seed);
        SequenceTable real(4, 16, 12, 2, true);
        CHECK(stress(real, seed, 400) == "");
        SequenceTable weak(4, 16, 12, 2, true);
        weak.set_hash(weak_hash);
        CHECK(stress(weak, seed, 400) == "");
    }
}

TEST_CASE("sequences: prefixes run together stay reachable after their first holder is gone", "[runtime]") {
    // Two sequences run the same 9 tokens at once (the second holds the first's kept blocks), both end, the pool is
    // used once by something else, and the prompt comes back: all of its full blocks are found (the review's
    // orphaned-chain case: before, the second's later blocks hung off a parent it did not hold).
    SequenceTable t(4, 64, 10, kB, true);
    const std::vector<int32_t> p = iota(13, 40);
    const int32_t a = t.add(), b = t.add();
    t.reserve({{a, 13}, {b, 13}});
    t.advance(a, 13, p.data());
    t.advance(b, 13, p.data());
    CHECK(t.check() == "");
    t.release(a);
    t.release(b);
    t.release(run(t, iota(20, 700)));  // 5 blocks: the free ones, then idle kept ones
    CHECK(t.check() == "");
    for (int i = 0; i < 3; ++i) {
        const int32_t c = t.add();
        const int64_t got = t.attach_prefix(c, p.data(), 13);
        const int64_t n = 13 - got;
        t.reserve({{c, n}});
        t.advance(c, n, p.data() + got);
        t.release(c);
        if (i > 0) CHECK(got == 12);
        CHECK(t.check() == "");
    }
}

TEST_CASE("sequences: a salt keeps chains apart", "[runtime]") {
    SequenceTable t(3, 64, 20, kB, true);
    const std::vector<int32_t> p = iota(9, 5);
    const int32_t a = t.add();
    CHECK(t.attach_prefix(a, p.data(), 9, 77) == 0);
    t.reserve({{a, 9}});
    t.advance(a, 9, p.data());
    t.release(a);
    const int32_t b = t.add(), c = t.add(), d = t.add();
    CHECK(t.attach_prefix(b, p.data(), 9) == 0);       // unsalted
    CHECK(t.attach_prefix(c, p.data(), 9, 78) == 0);   // another salt
    CHECK(t.attach_prefix(d, p.data(), 9, 77) == 8);   // the same salt
}
