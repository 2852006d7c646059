// One request inside the server: the parsed request, and the channel its output travels on from the scheduler
// thread (post) to the HTTP connection thread (next). cancel() (client gone) is seen by the scheduler at its next
// step, which then frees the request's sequence and KV blocks.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "serve/request.h"

namespace imp::serve {

using Clock = std::chrono::steady_clock;

struct TokenLogprob {
    int32_t id = 0;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // the most likely tokens, best first
};

// Output since the last next(): text deltas (stop strings already cut), per-token logprobs, and at the end a
// finish reason ("stop", "length", or "error" with a message).
struct Event {
    std::string text;
    std::vector<TokenLogprob> logprobs;
    std::string finish;
    std::string error;
    int64_t completion_tokens = 0;  // tokens generated so far (the latest count)
    int64_t cached_tokens = 0;      // prompt tokens whose KV came from the prefix cache (not run again)
};

class Job {
public:
    explicit Job(GenRequest r) : req_(std::move(r)), arrived_(Clock::now()) {}
    const GenRequest& request() const { return req_; }
    Clock::time_point arrived() const { return arrived_; }

    // Connection side: waits up to `timeout` for output and moves all of it into `ev` (merged); false on timeout.
    bool next(Event& ev, std::chrono::milliseconds timeout);
    void cancel() { cancelled_ = true; }
    bool cancelled() const { return cancelled_; }

    // Scheduler side.
    void post(Event ev);

private:
    GenRequest req_;
    Clock::time_point arrived_;
    std::atomic<bool> cancelled_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Event> out_;
};

}  // namespace imp::serve
