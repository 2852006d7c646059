// See metrics.h. Bucket bounds in seconds: TTFT from 1 ms to 60 s, ITL from 0.5 ms to 5 s.
#include "serve/metrics.h"

#include <algorithm>
#include <cstdio>

namespace imp::serve {

namespace {
std::string num(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.9g", v);
    return b;
}
}  // namespace

void Histogram::observe(double v) {
    const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    ++counts_[i];
    sum_ += v;
    ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        cum += counts_[i];
        out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
    }
    out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
    out += name + "_sum " + num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      itl_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}) {}

void Metrics::request_done(int http_status) {
    std::lock_guard<std::mutex> l(mu_);
    ++requests_[http_status];
}
void Metrics::tokens(int64_t prompt, int64_t generated) {
    std::lock_guard<std::mutex> l(mu_);
    prompt_tokens_ += uint64_t(prompt);
    generated_tokens_ += uint64_t(generated);
}
void Metrics::prefix_cache(int64_t queried, int64_t hit) {
    std::lock_guard<std::mutex> l(mu_);
    prefix_queried_ += uint64_t(queried);
    prefix_hit_ += uint64_t(hit);
}
void Metrics::first_token(double s) {
    std::lock_guard<std::mutex> l(mu_);
    ttft_.observe(s);
}
void Metrics::inter_token(double s) {
    std::lock_guard<std::mutex> l(mu_);
    itl_.observe(s);
}
void Metrics::gauges(int64_t running, int64_t waiting, int64_t kv_used, int64_t kv_free) {
    std::lock_guard<std::mutex> l(mu_);
    running_ = running;
    waiting_ = waiting;
    kv_used_ = kv_used;
    kv_free_ = kv_free;
}
void Metrics::step(int64_t rows, int64_t decode_rows, double seconds, double gap_seconds) {
    std::lock_guard<std::mutex> l(mu_);
    ++(rows == decode_rows ? steps_decode_ : steps_mixed_);
    step_rows_ += uint64_t(rows);
    step_decode_rows_ += uint64_t(decode_rows);
    step_seconds_ += seconds;
    if (gap_seconds >= 0) {
        gap_seconds_ += gap_seconds;
        ++gaps_;
    }
}
int64_t Metrics::running() const {
    std::lock_guard<std::mutex> l(mu_);
    return running_;
}
int64_t Metrics::waiting() const {
    std::lock_guard<std::mutex> l(mu_);
    return waiting_;
}

std::string Metrics::render() const {
    std::lock_guard<std::mutex> l(mu_);
    std::string o;
    o += "# HELP imp_requests_total Finished HTTP requests by status code.\n# TYPE imp_requests_total counter\n";
    for (auto& [code, n] : requests_) o += "imp_requests_total{status=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
    o += "# HELP imp_prompt_tokens_total Prompt tokens of requests whose prefill finished (prefix-cache hits "
         "included).\n# TYPE imp_prompt_tokens_total counter\n";
    o += "imp_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
    o += "# HELP imp_prefix_cache_queries_total Prompt tokens looked up in the prefix cache.\n"
         "# TYPE imp_prefix_cache_queries_total counter\n";
    o += "imp_prefix_cache_queries_total " + std::to_string(prefix_queried_) + "\n";
    o += "# HELP imp_prefix_cache_hits_total Prompt tokens whose KV came from the prefix cache.\n"
         "# TYPE imp_prefix_cache_hits_total counter\n";
    o += "imp_prefix_cache_hits_total " + std::to_string(prefix_hit_) + "\n";
    o += "# HELP imp_generation_tokens_total Tokens generated.\n# TYPE imp_generation_tokens_total counter\n";
    o += "imp_generation_tokens_total " + std::to_string(generated_tokens_) + "\n";
    ttft_.render(o, "imp_time_to_first_token_seconds", "From request arrival to its first generated token.");
    itl_.render(o, "imp_inter_token_latency_seconds", "Between consecutive generated tokens of a request.");
    auto counter = [&](const char* name, const char* help, const std::string& v) {
        o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + v + "\n";
    };
    o += "# HELP imp_steps_total Engine steps: all rows decode rows, or mixed with prompt chunks.\n"
         "# TYPE imp_steps_total counter\n";
    o += "imp_steps_total{kind=\"decode\"} " + std::to_string(steps_decode_) + "\n";
    o += "imp_steps_total{kind=\"mixed\"} " + std::to_string(steps_mixed_) + "\n";
    counter("imp_step_rows_total", "Rows (tokens) run by the engine steps.", std::to_string(step_rows_));
    counter("imp_step_decode_rows_total", "Decode rows (one per running request) of the engine steps.",
            std::to_string(step_decode_rows_));
    counter("imp_step_seconds_total", "Time from each engine step call to its tokens on the host.", num(step_seconds_));
    counter("imp_step_gaps_total", "Back-to-back steps whose gap is counted below.", std::to_string(gaps_));
    counter("imp_step_gap_seconds_total", "Host time from a step's tokens to the next engine step call (detokenize, admit, plan).",
            num(gap_seconds_));
    auto gauge = [&](const char* name, const char* help, int64_t v) {
        o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " +
             std::to_string(v) + "\n";
    };
    gauge("imp_requests_running", "Requests holding a sequence (prefilling or decoding).", running_);
    gauge("imp_requests_waiting", "Requests queued for a sequence slot or KV blocks.", waiting_);
    gauge("imp_kv_blocks_used", "KV cache blocks (16 positions) in use.", kv_used_);
    gauge("imp_kv_blocks_free", "KV cache blocks (16 positions) free.", kv_free_);
    return o;
}

}  // namespace imp::serve
