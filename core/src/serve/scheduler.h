// Continuous batching: one thread owns the engine (which is not thread-safe) and runs steps in a loop. Each
// iteration drops cancelled requests (their sequence and KV blocks go back at once), admits waiting requests in
// arrival order while a sequence slot and the KV blocks for prompt + max_tokens are free (so a running request never
// runs out of KV memory), launches one step (serve/step_plan.h: a decode row per running request, then prompt
// chunks of newly admitted ones under a token budget), and while the device runs it, hands the previous step's
// output to the requests' connections; then it samples the step's tokens on the device and turns them into each
// request's next output (detokenized, stop strings cut), posted at the next launch. Host work per request thus
// overlaps the device's step instead of adding to it.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine.h"
#include "serve/job.h"
#include "serve/metrics.h"
#include "tokenizer/tokenizer.h"

namespace imp::serve {

// The error of every request still running or waiting when the server stops.
inline constexpr const char* kShuttingDown = "the server is shutting down";

struct SchedulerOptions {
    int64_t max_queue = 64;      // waiting requests at most; submit() refuses more
    int64_t step_tokens = 512;   // rows per step (decode rows first, then prompt chunks)
    int64_t repeat_last_n = 64;  // history the repetition penalty sees
};

class Scheduler {
public:
    Scheduler(Engine& engine, const Tokenizer& tok, Metrics& metrics, const SchedulerOptions& opt);
    ~Scheduler();  // stop()
    // Queues the job; false when the queue is full (HTTP 429). The job's max_tokens must be resolved (tokenize()).
    bool submit(const std::shared_ptr<Job>& job);
    // Blocks a request of `tokens` positions needs, and the pool's size.
    int64_t blocks_for(int64_t tokens) const { return kv_blocks_for(tokens); }
    int64_t kv_blocks_total() const { return total_blocks_; }
    // Finishes every request with an error ("the server is shutting down") and joins the thread.
    void stop();
    bool stopping();  // stop() was called: submit() refuses for that reason, not a full queue

private:
    struct Active;
    struct Out {  // an output waiting for the next launch
        std::shared_ptr<Job> job;
        Event ev;
    };
    void loop();
    void admit();
    // Plans and launches a step (engine step, not waited for); false when there is nothing to run.
    bool launch(std::vector<SeqWork>& work, std::vector<Active*>& rows, int64_t& decode_rows);
    // Samples the launched step and queues each row's output in outbox_.
    void collect(const std::vector<SeqWork>& work, const std::vector<Active*>& rows);
    void flush();  // posts outbox_
    Event finish(Active& a, const std::string& reason, Event ev);  // the final event; marks a done
    void fail_all(const std::string& msg);
    void release_done();
    void publish_gauges();

    Engine& engine_;
    const Tokenizer& tok_;
    Metrics& metrics_;
    SchedulerOptions opt_;
    int64_t total_blocks_ = 0, committed_ = 0;  // blocks promised to running requests

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> waiting_;
    bool stopping_ = false;
    std::vector<std::unique_ptr<Active>> active_;  // scheduler thread only
    std::vector<Out> outbox_;                      // scheduler thread only
    Clock::time_point launched_at_, sampled_at_;   // the last step's engine call and its tokens on the host
    std::thread thread_;
};

}  // namespace imp::serve
