// Loading progress on stderr for big files: one self-overwriting line on a terminal, a few lines otherwise.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace imp {

class LoadProgress {
public:
    static constexpr uint64_t kMinFileBytes = 100ull << 20;  // smaller files load silently

    LoadProgress(const std::string& file, uint64_t file_bytes, uint64_t total)
        : file_(file), total_(total), on_(file_bytes > kMinFileBytes && total > 0), tty_(isatty(2) != 0) {}
    void add(uint64_t bytes) {
        if (!on_) return;
        done_ += bytes;
        const int pct = int(done_ * 100 / total_);
        if (tty_) {
            if (pct != last_) std::fprintf(stderr, "\rloading %s: %3d%%", file_.c_str(), pct);
            if (done_ >= total_) std::fprintf(stderr, "\n");
        } else if (pct / 25 != last_ / 25 || last_ < 0) {
            std::fprintf(stderr, "loading %s: %d%%\n", file_.c_str(), pct / 25 * 25);
        }
        last_ = pct;
    }

private:
    std::string file_;
    uint64_t total_, done_ = 0;
    bool on_, tty_;
    int last_ = -1;
};

}  // namespace imp
