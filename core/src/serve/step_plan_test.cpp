// plan_step: decode rows first, prompt chunks in admission order under the row budget, chunks continuing across steps.
#include <catch2/catch.hpp>

#include "serve/step_plan.h"

using namespace imp::serve;

namespace {

PlanRequest decoding(int64_t prompt) { return {prompt, prompt, false}; }
PlanRequest prefilling(int64_t prompt, int64_t done = 0) { return {prompt, done, false}; }

}  // namespace

TEST_CASE("plan_step: every decoding request gets one row ahead of any prompt chunk", "[serve]") {
    const std::vector<PlanRequest> r = {prefilling(10), decoding(4), prefilling(3), decoding(7)};
    const auto p = plan_step(r, 100);
    REQUIRE(p.size() == 4);
    CHECK((p[0].request == 1 && p[0].decode && p[0].n == 1 && p[0].off == 4));
    CHECK((p[1].request == 3 && p[1].decode && p[1].n == 1));
    CHECK((p[2].request == 0 && !p[2].decode && p[2].off == 0 && p[2].n == 10));
    CHECK((p[3].request == 2 && !p[3].decode && p[3].off == 0 && p[3].n == 3));
}

TEST_CASE("plan_step: prompt chunks take what the decode rows leave, and a cut prompt goes on next step", "[serve]") {
    // Budget 8: two decode rows, then 6 prompt rows: request 0's 5 left, 1 of request 2's; request 3 waits.
    std::vector<PlanRequest> r = {prefilling(9, 4), decoding(2), prefilling(4), decoding(3), prefilling(2)};
    auto p = plan_step(r, 8);
    REQUIRE(p.size() == 4);
    CHECK((p[2].request == 0 && p[2].off == 4 && p[2].n == 5));
    CHECK((p[3].request == 2 && p[3].off == 0 && p[3].n == 1));
    // Next step: request 0 decodes now, request 2 continues at token 1, request 4 gets the rest.
    r[0].prefilled = 9;
    r[2].prefilled = 1;
    p = plan_step(r, 8);
    REQUIRE(p.size() == 5);
    CHECK((p[0].request == 0 && p[0].decode));
    CHECK((p[3].request == 2 && p[3].off == 1 && p[3].n == 3));
    CHECK((p[4].request == 4 && p[4].off == 0 && p[4].n == 2));
}

TEST_CASE("plan_step: decode rows are never cut by the budget, skipped requests get no row", "[serve]") {
    std::vector<PlanRequest> r = {decoding(5), decoding(5), decoding(5), prefilling(4)};
    auto p = plan_step(r, 2);  // three decode rows over a budget of 2: all run, no prompt chunk
    REQUIRE(p.size() == 3);
    for (const auto& it : p) CHECK(it.decode);
    r[1].skip = true;
    r[3].skip = true;
    p = plan_step(r, 100);
    REQUIRE(p.size() == 2);
    CHECK((p[0].request == 0 && p[1].request == 2));
    CHECK(plan_step({}, 10).empty());
}
