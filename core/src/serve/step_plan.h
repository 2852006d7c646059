// What one engine step of the server runs (a pure function, tested alone): one decode row for every running request
// that has its whole prompt in, first, so that running requests never wait behind a prefill; then prompt chunks of
// the requests still prefilling, in admission order, until the step's row budget is spent. A prompt longer than
// what is left of the budget continues in the next step (chunked prefill mixed with decode).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace imp::serve {

struct PlanRequest {
    int64_t prompt_len = 0;  // prompt tokens
    int64_t prefilled = 0;   // of them already run
    bool skip = false;       // cancelled or finished: no row
};

struct PlanItem {
    size_t request = 0;  // index into the requests given
    int64_t off = 0;     // first prompt token of the chunk (decode: prompt_len)
    int64_t n = 0;       // rows (decode: 1)
    bool decode = false;
};

// Decode items first (in request order), then prompt chunks. Decode rows count against `budget` but are never cut
// by it; prompt chunks take what is left (none when the decode rows use it all).
std::vector<PlanItem> plan_step(std::span<const PlanRequest> reqs, int64_t budget);

}  // namespace imp::serve
