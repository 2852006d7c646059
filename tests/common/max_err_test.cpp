// Tests of the shared error measures (max_err.h): a NaN or an Inf in the output or the reference never passes.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "common/max_err.h"

using imp::test::max_rel_err;
using imp::test::MaxRelErr;
using imp::test::rel_l2_err;
using imp::test::worst_of;

namespace {
const double kInf = std::numeric_limits<double>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();
}  // namespace

TEST_CASE("max_err: max_rel_err is max |got - want| / max |want|", "[test_util]") {
    const std::vector<float> want{1.f, -4.f, 2.f}, got{1.5f, -4.f, 1.f};
    CHECK(max_rel_err(got, want) == Approx(1.0 / 4.0));
    CHECK(max_rel_err(want, want) == 0.0);
    const std::vector<double> wd{1.0, -4.0, 2.0};
    CHECK(max_rel_err(got, wd) == Approx(0.25));
    CHECK(max_rel_err(got.data(), wd.data(), 2) == Approx(0.5 / 4.0));
    // An all-zero reference: the absolute error.
    CHECK(max_rel_err(std::vector<float>{0.5f, 0.f}, std::vector<float>{0.f, 0.f}) == Approx(0.5));
}

TEST_CASE("max_err: an all-NaN or all-Inf output, or a NaN reference, scores +inf", "[test_util]") {
    const std::vector<float> want{1.f, -2.f, 3.f, 0.5f};
    const std::vector<float> nan(want.size(), kNaN), inf(want.size(), std::numeric_limits<float>::infinity());
    CHECK(max_rel_err(nan, want) == kInf);
    CHECK(max_rel_err(inf, want) == kInf);
    CHECK(max_rel_err(want, nan) == kInf);
    CHECK(rel_l2_err(nan, want) == kInf);
    CHECK(rel_l2_err(inf, want) == kInf);
    CHECK(rel_l2_err(want, nan) == kInf);
    // One NaN among good values, first or last (a fold with std::max keeps the running value either way).
    for (size_t at : {size_t(0), want.size() - 1}) {
        std::vector<float> got = want;
        got[at] = kNaN;
        CHECK(max_rel_err(got, want) == kInf);
        CHECK(rel_l2_err(got, want) == kInf);
    }
    CHECK_FALSE(max_rel_err(nan, want) <= 1e30);
}

TEST_CASE("max_err: sizes that differ score +inf", "[test_util]") {
    CHECK(max_rel_err(std::vector<float>{1.f}, std::vector<float>{1.f, 2.f}) == kInf);
    CHECK(rel_l2_err(std::vector<float>{1.f}, std::vector<float>{1.f, 2.f}) == kInf);
}

TEST_CASE("max_err: the accumulator and worst_of keep a NaN", "[test_util]") {
    MaxRelErr e;
    e.add(1.0, 2.0);
    CHECK(e.value() == Approx(0.5));
    CHECK(e.max_abs_err() == Approx(1.0));
    e.add(double(kNaN), 1.0);
    e.add(3.0, 3.0);
    CHECK(e.value() == kInf);
    CHECK(e.max_abs_err() == kInf);
    MaxRelErr p;
    p.poison();
    CHECK(p.value() == kInf);
    CHECK(worst_of(0.5, 0.25) == 0.5);
    CHECK(worst_of(0.25, 0.5) == 0.5);
    CHECK(worst_of(0.5, double(kNaN)) == kInf);
    CHECK(worst_of(worst_of(0.0, double(kNaN)), 0.1) == kInf);
    CHECK(worst_of(0.0, kInf) == kInf);
}
