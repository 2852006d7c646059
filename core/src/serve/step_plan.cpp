// See step_plan.h.
#include "serve/step_plan.h"

#include <algorithm>

namespace imp::serve {

std::vector<PlanItem> plan_step(std::span<const PlanRequest> reqs, int64_t budget) {
    std::vector<PlanItem> out;
    for (size_t i = 0; i < reqs.size(); ++i)
        if (!reqs[i].skip && reqs[i].prefilled >= reqs[i].prompt_len) {
            out.push_back({i, reqs[i].prompt_len, 1, true});
            --budget;
        }
    for (size_t i = 0; i < reqs.size() && budget > 0; ++i) {
        const PlanRequest& r = reqs[i];
        if (r.skip || r.prefilled >= r.prompt_len) continue;
        const int64_t n = std::min(budget, r.prompt_len - r.prefilled);
        out.push_back({i, r.prefilled, n, false});
        budget -= n;
    }
    return out;
}

}  // namespace imp::serve
