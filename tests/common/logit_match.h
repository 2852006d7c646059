// Test helper: does one row of logits from a device match the CPU reference's row within a tolerance? Used where
// the device sums in another order than the CPU (e.g. the one-kernel decode attention), so greedy tokens may part
// at a near-tie without either being wrong. Header-only, no Catch2:
//   auto m = imp::test::match_logits(got, want, n_vocab, 1e-2);
//   INFO(m.describe()); CHECK(m.ok);
// A row matches when max |got - want| <= tol * max |want| (the absolute tolerance `abs_tol`) and the top-1 ids are
// equal unless the CPU's own top-2 margin is below abs_tol (a near-tie the tolerance cannot order). A NaN or Inf in
// either row never matches.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace imp::test {

struct LogitMatch {
    bool ok = false;
    double max_abs_err = 0, abs_tol = 0, cpu_margin = 0;  // cpu_margin: want[top1] - want[top2]
    int64_t cpu_top = -1, got_top = -1;
    std::string describe() const {
        return "max |err| " + std::to_string(max_abs_err) + " (tolerance " + std::to_string(abs_tol) +
               "), top-1 CPU " + std::to_string(cpu_top) + " / device " + std::to_string(got_top) +
               ", CPU top-2 margin " + std::to_string(cpu_margin);
    }
};

// Ties in argmax go to the lowest id (as the samplers do).
template <typename A, typename B> LogitMatch match_logits(const A* got, const B* want, int64_t n, double tol) {
    LogitMatch m;
    if (n < 2) return m;
    double wmax = 0, first = -std::numeric_limits<double>::infinity(), second = first, gbest = first;
    for (int64_t i = 0; i < n; ++i) {
        const double g = double(got[i]), w = double(want[i]);
        if (!std::isfinite(g) || !std::isfinite(w)) {
            m.max_abs_err = std::numeric_limits<double>::infinity();
            return m;
        }
        m.max_abs_err = std::fmax(m.max_abs_err, std::fabs(g - w));
        wmax = std::fmax(wmax, std::fabs(w));
        if (w > first) {
            second = first, first = w, m.cpu_top = i;
        } else if (w > second) {
            second = w;
        }
        if (g > gbest) gbest = g, m.got_top = i;
    }
    m.cpu_margin = first - second;
    m.abs_tol = tol * wmax;
    m.ok = m.max_abs_err <= m.abs_tol && (m.cpu_top == m.got_top || m.cpu_margin < m.abs_tol);
    return m;
}

}  // namespace imp::test
