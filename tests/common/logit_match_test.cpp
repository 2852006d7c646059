// Tests of match_logits (logit_match.h): the error bound, the top-1 rule with its near-tie exception, NaN/Inf.
#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "common/logit_match.h"

using imp::test::match_logits;

TEST_CASE("logit_match: within the tolerance and the same top-1 matches", "[test_util]") {
    const std::vector<float> want{1.f, 10.f, -3.f, 4.f}, got{1.05f, 9.95f, -3.f, 4.02f};
    const auto m = match_logits(got.data(), want.data(), 4, 1e-2);  // abs tolerance 0.1
    CHECK(m.ok);
    CHECK(m.abs_tol == Approx(0.1));
    CHECK(m.max_abs_err == Approx(0.05).epsilon(1e-4));
    CHECK(m.cpu_top == 1);
    CHECK(m.got_top == 1);
    CHECK(m.cpu_margin == Approx(6.0));
}

TEST_CASE("logit_match: an error above the tolerance fails", "[test_util]") {
    const std::vector<float> want{1.f, 10.f, -3.f, 4.f}, got{1.f, 10.f, -3.2f, 4.f};
    const auto m = match_logits(got.data(), want.data(), 4, 1e-2);
    CHECK(!m.ok);
    CHECK(m.max_abs_err == Approx(0.2).epsilon(1e-4));
}

TEST_CASE("logit_match: another top-1 passes only at a CPU near-tie", "[test_util]") {
    // CPU margin 0.05 < 0.1: the device may pick the other token.
    const std::vector<float> want{10.f, 9.95f, 0.f}, got{9.97f, 9.99f, 0.f};
    const auto tie = match_logits(got.data(), want.data(), 3, 1e-2);
    CHECK(tie.ok);
    CHECK(tie.cpu_top == 0);
    CHECK(tie.got_top == 1);
    // CPU margin 0.15 >= 0.1, errors 0.08 each (within the bound): another top-1 fails.
    const std::vector<float> want2{10.f, 9.85f, 0.f}, got2{9.92f, 9.93f, 0.f};
    const auto m = match_logits(got2.data(), want2.data(), 3, 1e-2);
    CHECK(m.max_abs_err <= m.abs_tol);
    CHECK(!m.ok);
}

TEST_CASE("logit_match: NaN or Inf never matches", "[test_util]") {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const std::vector<float> want{1.f, 2.f, 3.f};
    for (float bad : {nan, inf}) {
        std::vector<float> got = want;
        got[1] = bad;
        CHECK(!match_logits(got.data(), want.data(), 3, 1.0).ok);
        CHECK(!match_logits(want.data(), got.data(), 3, 1.0).ok);
    }
}
