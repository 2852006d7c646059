// Weight-only CUDA weights: a weight's canonical rows read in place from several runs (the file's per-expert or
// per-part tensors: no gathered host copy), shared by the FP8 and NVFP4 uploads. Run is the format's row run
// (fp8_cuda.h, nvfp4_cuda.h): its pointers and `rows`. Needs no CUDA headers.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "imp/error.h"

namespace imp::wo {

template <class Run>
class RowRuns {
public:
    // Throws imp::Error naming `what` when a run has no data (!has_data(run)) or no rows, or when the runs do not
    // hold exactly `total` rows.
    template <class HasData>
    RowRuns(const std::vector<Run>& runs, int64_t total, const std::string& what, HasData has_data) : runs_(runs) {
        int64_t at = 0;
        for (const Run& r : runs_) {
            if (!has_data(r) || r.rows <= 0) throw Error(what + ": a row run without data or rows");
            start_.push_back(at);
            at += r.rows;
        }
        if (at != total)
            throw Error(what + ": the row runs hold " + std::to_string(at) + " rows, expected " + std::to_string(total));
    }
    const std::vector<Run>& runs() const { return runs_; }
    // f(run, row inside it) for logical rows [r0, r0 + n), in order.
    template <class F>
    void for_rows(int64_t r0, int64_t n, F f) const {
        if (n <= 0) return;
        size_t k = size_t(std::upper_bound(start_.begin(), start_.end(), r0) - start_.begin()) - 1;
        int64_t local = r0 - start_[k];
        for (int64_t i = 0; i < n; ++i) {
            f(runs_[k], local);
            if (++local == runs_[k].rows && i + 1 < n) {
                ++k;
                local = 0;
            }
        }
    }

private:
    std::vector<Run> runs_;
    std::vector<int64_t> start_;  // the logical row each run starts at
};

}  // namespace imp::wo
