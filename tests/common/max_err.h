// Test helper: the error measures every numeric test compares with, NaN/Inf-aware. A NaN or an Inf anywhere in the
// output or in the reference makes the error +infinity, so no tolerance passes it (std::max drops a NaN: an all-NaN
// output would otherwise score 0). Header-only, no Catch2; every test target has tests/ on its include path:
//   #include "common/max_err.h"
//   CHECK(imp::test::max_rel_err(got, want) <= 1e-5);      // max |got - want| / max |want|
//   imp::test::MaxRelErr e; e.add(got_i, want_i); ... CHECK(e.value() <= tol);   // for loops over other layouts
//   worst = imp::test::worst_of(worst, ratio);               // a running maximum that keeps NaN (as +infinity)
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>

namespace imp::test {

// The running max of |got - want| and of |want|; any non-finite value poisons it.
class MaxRelErr {
public:
    void add(double got, double want) {
        if (!std::isfinite(got) || !std::isfinite(want)) {
            bad_ = true;
            return;
        }
        const double d = std::fabs(got - want), r = std::fabs(want);
        if (d > num_) num_ = d;
        if (r > den_) den_ = r;
    }
    void poison() { bad_ = true; }
    // max |got - want| / max |want| (the absolute error when the reference is all zero); +inf after a NaN/Inf.
    double value() const {
        if (bad_) return std::numeric_limits<double>::infinity();
        return den_ > 0 ? num_ / den_ : num_;
    }
    double max_abs_err() const { return bad_ ? std::numeric_limits<double>::infinity() : num_; }

private:
    double num_ = 0, den_ = 0;
    bool bad_ = false;
};

// max |got - want| / max |want| over n values; +inf when any value is NaN/Inf.
template <typename A, typename B> double max_rel_err(const A* got, const B* want, size_t n) {
    MaxRelErr e;
    for (size_t i = 0; i < n; ++i) e.add(double(got[i]), double(want[i]));
    return e.value();
}

// The same over two containers (std::vector, std::span, ...); +inf when their sizes differ.
template <typename CA, typename CB> double max_rel_err(const CA& got, const CB& want) {
    if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
    return max_rel_err(got.data(), want.data(), got.size());
}

// ||got - want|| / ||want|| (the absolute norm when the reference is all zero); +inf when any value is NaN/Inf or
// the sizes differ.
template <typename CA, typename CB> double rel_l2_err(const CA& got, const CB& want) {
    if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double a = double(got[i]), b = double(want[i]);
        if (!std::isfinite(a) || !std::isfinite(b)) return std::numeric_limits<double>::infinity();
        num += (a - b) * (a - b);
        den += b * b;
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// max(acc, v) that keeps a NaN/Inf v (as +inf) instead of dropping it.
inline double worst_of(double acc, double v) {
    if (!std::isfinite(v)) return std::numeric_limits<double>::infinity();
    return v > acc ? v : acc;
}

}  // namespace imp::test
