// The scheduler on SmolLM2 (CPU): admission waits for KV blocks, max_tokens ends a request with "length", and a
// cancelled request's blocks go back to the pool.
#include <catch2/catch.hpp>
#include <thread>
#include <utility>

#include "cli/session.h"
#include "profile/profile.h"
#include "serve/scheduler.h"

using namespace imp::serve;

namespace {

imp::Profile profile(const std::vector<std::string>& extra) {
    std::vector<std::string> o = {"runtime.executor=cpu", "runtime.max_seq_len=256"};
    o.insert(o.end(), extra.begin(), extra.end());
    return imp::load_profile(std::string(IMP_SOURCE_DIR) + "/configs/smollm2.toml", o);
}

std::shared_ptr<Job> job(const imp::Tokenizer& tok, const std::string& prompt, int64_t max_tokens,
                         bool ignore_eos = false) {
    GenRequest r;
    r.ignore_eos = ignore_eos;
    r.kind = ApiKind::Completion;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    tokenize(r, tok, 256);
    return std::make_shared<Job>(std::move(r));
}

// Reads the job to its end; returns the finish reason and when its first output came.
std::pair<Event, Clock::time_point> drain(Job& j) {
    Event ev, all;
    Clock::time_point first{};
    for (int i = 0; i < 6000 && all.finish.empty(); ++i) {
        if (!j.next(ev, std::chrono::milliseconds(50))) continue;
        if (first == Clock::time_point{}) first = Clock::now();
        all.text += ev.text;
        all.finish = ev.finish;
        all.completion_tokens = ev.completion_tokens;
    }
    return {all, first};
}

}  // namespace

TEST_CASE("scheduler: a request waits for KV blocks and then runs to max_tokens (length)", "[serve][smollm2]") {
    // 8 blocks: two requests of 5 prompt + 59 tokens (4 blocks each) fit, a third waits for one of them.
    imp::Session s(profile({"runtime.max_seqs=3", "runtime.kv_blocks=8"}));
    Metrics m;
    Scheduler sched(s.engine(), s.tokenizer(), m, SchedulerOptions{});
    REQUIRE(sched.kv_blocks_total() == 8);
    auto a = job(s.tokenizer(), "The capital of France is", 59, true);
    auto b = job(s.tokenizer(), "The capital of Spain is", 59, true);
    auto c = job(s.tokenizer(), "The capital of Italy is", 5);
    REQUIRE(sched.submit(a));
    REQUIRE(sched.submit(b));
    REQUIRE(sched.submit(c));
    // While a and b run (59 tokens each), c waits: the gauges say 2 running, 1 waiting.
    Event ev;
    bool started = false;
    for (int i = 0; i < 2000 && !started; ++i) started = a->next(ev, std::chrono::milliseconds(50));
    REQUIRE(started);
    REQUIRE(ev.finish.empty());
    bool seen = false;
    for (int i = 0; i < 200 && !seen; ++i) {
        seen = m.running() == 2 && m.waiting() == 1;
        if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(seen);
    auto [ea, fa] = drain(*a);
    auto [eb, fb] = drain(*b);
    auto [ec, fc] = drain(*c);
    CHECK(ea.finish == "length");
    CHECK(ea.completion_tokens == 59);
    CHECK(eb.finish == "length");
    CHECK(ec.finish == "length");
    CHECK(ec.completion_tokens == 5);
    CHECK(ec.text.find("Rome") != std::string::npos);
    for (int i = 0; i < 100 && m.running() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(m.running() == 0);
    CHECK(s.engine().free_kv_blocks() == 8);
}

TEST_CASE("scheduler: cancelling a running request frees its blocks and a full queue refuses", "[serve][smollm2]") {
    imp::Session s(profile({"runtime.max_seqs=1"}));
    Metrics m;
    SchedulerOptions o;
    o.max_queue = 1;
    Scheduler sched(s.engine(), s.tokenizer(), m, o);
    const int64_t total = sched.kv_blocks_total();
    auto a = job(s.tokenizer(), "Count: 1, 2, 3,", 200, true);
    REQUIRE(sched.submit(a));
    Event ev;
    bool got = false;
    for (int i = 0; i < 2000 && !got; ++i) got = a->next(ev, std::chrono::milliseconds(50));
    REQUIRE(got);
    REQUIRE(ev.finish.empty());
    auto b = job(s.tokenizer(), "Hello", 3);
    auto c = job(s.tokenizer(), "Hello", 3);
    REQUIRE(sched.submit(b));   // waits: the one sequence is a's
    CHECK(!sched.submit(c));    // the queue (1) is full
    a->cancel();
    auto [eb, first_b] = drain(*b);
    CHECK(eb.finish == "length");
    for (int i = 0; i < 100 && s.engine().free_kv_blocks() != total; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(s.engine().free_kv_blocks() == total);
}
