// See job.h.
#include "serve/job.h"

namespace imp::serve {

bool Job::next(Event& ev, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, timeout, [&] { return !out_.empty(); })) return false;
    ev = Event{};
    for (auto& e : out_) {
        ev.text += e.text;
        ev.logprobs.insert(ev.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
        if (!e.finish.empty()) ev.finish = e.finish;
        if (!e.error.empty()) ev.error = e.error;
        ev.completion_tokens = e.completion_tokens;
        ev.cached_tokens = e.cached_tokens;
    }
    out_.clear();
    return true;
}

void Job::post(Event ev) {
    {
        std::lock_guard<std::mutex> l(mu_);
        out_.push_back(std::move(ev));
    }
    cv_.notify_all();
}

}  // namespace imp::serve
