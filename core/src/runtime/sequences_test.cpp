// SequenceTable's prefix caching: full blocks a sequence ran are found again by later sequences whose tokens begin the
// same way (and only then: a different earlier block, or a last token left to run, stops the match); shared blocks
// are held by reference; kept blocks nobody holds count as free and are reused least recently released first; without
// prefix caching nothing is kept.
#include <catch2/catch.hpp>

#include <numeric>
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
    CHECK(row(t, b)[0] != row(t, a)[0]);
    t.release(b);
    CHECK(t.free_blocks() == 19 - 3);  // b's blocks were not kept: free again; a holds 3
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
