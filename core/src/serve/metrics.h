// Server metrics, rendered as Prometheus text (GET /metrics): requests by HTTP status, prompt and generated tokens,
// time-to-first-token and inter-token latency histograms, running/waiting requests and KV blocks, and the engine
// steps (all-decode or mixed with prompt chunks, their rows, time in steps and between them). Thread-safe.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace imp::serve {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
    void observe(double v);
    // name_bucket{le="..."} (cumulative), name_sum, name_count.
    void render(std::string& out, const std::string& name, const std::string& help) const;

private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket (not cumulative); the last is +Inf
    double sum_ = 0;
    uint64_t count_ = 0;
};

class Metrics {
public:
    Metrics();
    void request_done(int http_status);
    void tokens(int64_t prompt, int64_t generated);
    void prefix_cache(int64_t queried, int64_t hit);  // prompt tokens looked up in the prefix cache, and found
    void first_token(double seconds);
    void inter_token(double seconds);
    void gauges(int64_t running, int64_t waiting, int64_t kv_used, int64_t kv_free);
    // One engine step of `rows` rows, `decode_rows` of them decode rows (all of them: an all-decode step): `seconds`
    // from the engine step call to its tokens on the host; `gap_seconds` from the previous step's tokens to this call
    // (host time between back-to-back steps; negative when the engine was idle before it: not counted).
    void step(int64_t rows, int64_t decode_rows, double seconds, double gap_seconds);
    std::string render() const;

    int64_t running() const;  // for tests and /health
    int64_t waiting() const;

private:
    mutable std::mutex mu_;
    std::map<int, uint64_t> requests_;
    uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, prefix_queried_ = 0, prefix_hit_ = 0;
    Histogram ttft_, itl_;
    int64_t running_ = 0, waiting_ = 0, kv_used_ = 0, kv_free_ = 0;
    uint64_t steps_decode_ = 0, steps_mixed_ = 0, step_rows_ = 0, step_decode_rows_ = 0, gaps_ = 0;
    double step_seconds_ = 0, gap_seconds_ = 0;
};

}  // namespace imp::serve
