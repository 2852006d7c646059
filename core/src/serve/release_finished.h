// Removes a container's finished entries, releasing each one first. Whether an entry is finished is read once per
// entry: the flag may be set by another thread at any time (a client's cancel), and an entry that a second read
// erased without the first one releasing it would keep its sequence and KV blocks for good.
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

namespace imp::serve {

// finished(entry) -> bool is called once per entry, in order; release(entry) right after it for each finished one.
// The kept entries stay in their order. If release throws, the entries released before it are removed, the one it
// threw on and those after it are kept.
template <class T, class Finished, class Release>
void release_finished(std::vector<T>& items, Finished finished, Release release) {
    size_t kept = 0, i = 0;
    auto compact = [&] {
        for (; i < items.size(); ++i, ++kept)
            if (kept != i) items[kept] = std::move(items[i]);
        items.erase(items.begin() + std::ptrdiff_t(kept), items.end());
    };
    try {
        for (; i < items.size(); ++i) {
            if (finished(items[i])) {
                release(items[i]);
                continue;
            }
            if (kept != i) items[kept] = std::move(items[i]);
            ++kept;
        }
    } catch (...) {
        compact();
        throw;
    }
    items.erase(items.begin() + std::ptrdiff_t(kept), items.end());
}

}  // namespace imp::serve
