// release_finished reads each entry's "finished" flag once: a flag set by another thread while the pass runs (a client
// cancelling) leaves that entry either released and removed, or kept for the next pass, never removed unreleased.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <vector>

#include "serve/release_finished.h"

using imp::serve::release_finished;

namespace {
struct Entry {
    int id;
    bool finished = false;
};
using List = std::vector<std::unique_ptr<Entry>>;

List make(std::initializer_list<bool> finished) {
    List v;
    int id = 0;
    for (bool f : finished) v.push_back(std::make_unique<Entry>(Entry{id++, f}));
    return v;
}

std::vector<int> ids(const List& v) {
    std::vector<int> out;
    for (const auto& e : v) out.push_back(e->id);
    return out;
}
}  // namespace

TEST_CASE("release_finished: finished entries are released once and removed, the others kept in order", "[serve]") {
    List v = make({true, false, true, true, false, false, true});
    std::vector<int> released;
    release_finished(v, [](const auto& e) { return e->finished; }, [&](const auto& e) { released.push_back(e->id); });
    CHECK(released == std::vector<int>{0, 2, 3, 6});
    CHECK(ids(v) == std::vector<int>{1, 4, 5});
    release_finished(v, [](const auto& e) { return e->finished; }, [&](const auto& e) { released.push_back(e->id); });
    CHECK(released.size() == 4);  // nothing finished: nothing released twice
    CHECK(ids(v) == std::vector<int>{1, 4, 5});
}

TEST_CASE("release_finished: a flag set during the pass never removes an entry it did not release", "[serve]") {
    // For each entry and each moment of the pass, that entry's flag is set between two reads (as a connection
    // thread's cancel may be): the entries removed are exactly the ones released.
    // The flags live outside the entries, as a job's cancel flag lives in the Job, not in the scheduler's entry.
    for (int target = 0; target < 5; ++target) {
        for (int when = 0; when < 5; ++when) {
            List v = make({false, false, false, false, false});
            std::vector<char> flag = {0, 1, 0, 1, 0};
            std::vector<int> released;
            int reads = 0;
            release_finished(
                v,
                [&](const auto& e) {
                    if (reads++ == when) flag[size_t(target)] = 1;  // the flag flips between reads
                    return flag[size_t(e->id)] != 0;
                },
                [&](const auto& e) { released.push_back(e->id); });
            CHECK(reads == 5);
            const auto left = ids(v);
            std::vector<int> removed;
            for (int id = 0; id < 5; ++id)
                if (std::find(left.begin(), left.end(), id) == left.end()) removed.push_back(id);
            CHECK(removed == released);
        }
    }
}

TEST_CASE("release_finished: a release that throws keeps that entry and those after it", "[serve]") {
    List v = make({true, false, true, true});
    std::vector<int> released;
    CHECK_THROWS_AS(release_finished(
                        v, [](const auto& e) { return e->finished; },
                        [&](const auto& e) {
                            if (e->id == 2) throw std::runtime_error("release failed");
                            released.push_back(e->id);
                        }),
                    std::runtime_error);
    CHECK(released == std::vector<int>{0});
    CHECK(ids(v) == std::vector<int>{1, 2, 3});
    for (const auto& e : v) CHECK(e != nullptr);
}
