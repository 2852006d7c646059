// The scheduler on SmolLM2 (CPU): admission waits for KV blocks, max_tokens ends a request with "length", a
// cancelled request's blocks go back to the pool, and requests sharing steps (prompts chunked across steps beside
// other requests' decode rows, some asking for logprobs) each give what they give alone.
#include <algorithm>
#include <catch2/catch.hpp>
#include <thread>
#include <utility>

#include "cli/session.h"
#include "profile/profile.h"
#include "serve/scheduler.h"

using namespace imp::serve;
using imp::kv_blocks_for;

namespace {

imp::Profile profile(const std::vector<std::string>& extra) {
    std::vector<std::string> o = {"runtime.executor=cpu", "runtime.max_seq_len=256"};
    o.insert(o.end(), extra.begin(), extra.end());
    return imp::load_profile(std::string(IMP_SOURCE_DIR) + "/configs/smollm2.toml", o);
}

std::shared_ptr<Job> job(const imp::Tokenizer& tok, const std::string& prompt, int64_t max_tokens,
                         bool ignore_eos = false, int top_logprobs = -1, const std::string& salt = "") {
    GenRequest r;
    r.cache_salt = salt;
    r.logprobs = top_logprobs >= 0;
    r.top_logprobs = std::max(top_logprobs, 0);
    r.ignore_eos = ignore_eos;
    r.kind = ApiKind::Completion;
    r.prompt = prompt;
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    tokenize(r, tok, 256, kv_blocks_for(256));
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
        all.logprobs.insert(all.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
        all.finish = ev.finish;
        all.completion_tokens = ev.completion_tokens;
        all.cached_tokens = ev.cached_tokens;
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

TEST_CASE("scheduler: requests sharing steps (chunked prompts, logprobs rows) give what they give alone",
          "[serve][smollm2]") {
    // 3 sequences, 6 rows per step: a prompt of 8+ tokens takes two or more steps, run beside the decode rows of
    // the others; 7 requests queue for the 3 slots. Every second one asks for logprobs (its logits alone come back).
    imp::Session s(profile({"runtime.max_seqs=3"}));
    Metrics m;
    SchedulerOptions o;
    o.step_tokens = 6;
    Scheduler sched(s.engine(), s.tokenizer(), m, o);
    const std::vector<std::string> prompts = {
        "The capital of France is", "Once upon a time, in a small village by the sea, there lived",
        "1, 2, 3, 4, 5,", "The quick brown fox jumps over the lazy dog. The quick brown",
        "Water boils at", "My favourite colour is", "In 1492, Columbus sailed across the"};
    auto make = [&](size_t i) {
        return job(s.tokenizer(), prompts[i], int64_t(4 + 3 * i), true, i % 2 == 0 ? int(i % 3) : -1);
    };
    std::vector<Event> alone;
    for (size_t i = 0; i < prompts.size(); ++i) {
        auto j = make(i);
        REQUIRE(sched.submit(j));
        alone.push_back(drain(*j).first);
    }
    std::vector<std::shared_ptr<Job>> jobs;
    for (size_t i = 0; i < prompts.size(); ++i) {
        jobs.push_back(make(i));
        REQUIRE(sched.submit(jobs.back()));
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
        const Event e = drain(*jobs[i]).first;
        INFO("request " << i << ": " << prompts[i]);
        CHECK(e.finish == "length");
        CHECK(e.completion_tokens == int64_t(4 + 3 * i));
        CHECK(e.text == alone[i].text);
        REQUIRE(e.logprobs.size() == (i % 2 == 0 ? size_t(e.completion_tokens) : 0));
        for (size_t t = 0; t < e.logprobs.size(); ++t) {
            const TokenLogprob &a = alone[i].logprobs[t], &b = e.logprobs[t];
            CHECK(b.id == a.id);
            CHECK(b.logprob <= 0.f);
            CHECK(std::abs(b.logprob - a.logprob) < 1e-3f);  // same row, other rows beside it: fp32 sums may differ
            REQUIRE(b.top.size() == i % 3);
            for (size_t k = 0; k < b.top.size(); ++k) CHECK(std::abs(b.top[k].second - a.top[k].second) < 1e-3f);
        }
    }
    for (int i = 0; i < 100 && m.running() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(m.running() == 0);
    CHECK(s.engine().free_kv_blocks() == sched.kv_blocks_total());
}

TEST_CASE("scheduler: with prefix caching a repeated prompt starts on its kept blocks and says so", "[serve][smollm2]") {
    // imp serve's engine (Session::Mode::Serve, [server] prefix_cache = true by default): the second request of the
    // same prompt runs only its last partial block; the greedy text equals the first's and a server's without the
    // cache; usage and the metrics count the cached tokens.
    imp::Session s(profile({"runtime.max_seqs=2"}), imp::Session::Mode::Serve);
    REQUIRE(s.engine().prefix_cache());
    Metrics m;
    Scheduler sched(s.engine(), s.tokenizer(), m, SchedulerOptions{});
    const std::string prompt =
        "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
        "movable metal type, oil-based inks and a wooden press into a system that could produce books quickly. "
        "Within fifty years";
    auto a = job(s.tokenizer(), prompt, 12, true);
    const int64_t n = int64_t(a->request().prompt_ids.size());
    REQUIRE(n > 33);
    REQUIRE(sched.submit(a));
    const Event ea = drain(*a).first;
    auto b = job(s.tokenizer(), prompt, 12, true);
    REQUIRE(sched.submit(b));
    const Event eb = drain(*b).first;
    CHECK(ea.cached_tokens == 0);
    CHECK(eb.cached_tokens == (n - 1) / 16 * 16);
    CHECK(eb.text == ea.text);
    CHECK(ea.completion_tokens == 12);
    const std::string text = m.render();
    CHECK(text.find("imp_prefix_cache_hits_total " + std::to_string(eb.cached_tokens) + "\n") != std::string::npos);
    CHECK(text.find("imp_prefix_cache_queries_total " + std::to_string(2 * n) + "\n") != std::string::npos);
    sched.stop();

    imp::Session plain(profile({"runtime.max_seqs=2", "server.prefix_cache=false"}), imp::Session::Mode::Serve);
    CHECK_FALSE(plain.engine().prefix_cache());
    Metrics m2;
    Scheduler s2(plain.engine(), plain.tokenizer(), m2, SchedulerOptions{});
    auto c = job(plain.tokenizer(), prompt, 12, true);
    REQUIRE(s2.submit(c));
    const Event ec = drain(*c).first;
    CHECK(ec.text == ea.text);
    CHECK(ec.cached_tokens == 0);
}

TEST_CASE("scheduler: many requests sharing a prefix on a small pool, salts kept apart", "[serve][smollm2]") {
    // 12 requests, 4 at a time, on a pool of 40 blocks: each begins with the same ~40-token text and ends its own
    // way; no request ever finds the pool exhausted, each text equals the request served by a server without the
    // cache, every block is free at the end; a salted request does not start on unsalted blocks.
    const std::string shared =
        "Instructions: answer the question below in a few words, without repeating the question, and stop after the "
        "answer. Question: ";
    const char* endings[] = {"What colour is the sky?", "What is two plus two?", "Name a fruit.", "Name a planet."};
    imp::Session s(profile({"runtime.max_seqs=4", "runtime.kv_blocks=40"}), imp::Session::Mode::Serve);
    imp::Session plain(profile({"runtime.max_seqs=4", "runtime.kv_blocks=40", "server.prefix_cache=false"}),
                       imp::Session::Mode::Serve);
    Metrics m, m2;
    Scheduler sched(s.engine(), s.tokenizer(), m, SchedulerOptions{});
    Scheduler ref(plain.engine(), plain.tokenizer(), m2, SchedulerOptions{});
    std::vector<std::shared_ptr<Job>> jobs, refs;
    for (int i = 0; i < 12; ++i) {
        const std::string p = shared + endings[i % 4];
        jobs.push_back(job(s.tokenizer(), p, 6 + i % 3, true));
        refs.push_back(job(plain.tokenizer(), p, 6 + i % 3, true));
    }
    for (int i = 0; i < 12; ++i) {
        REQUIRE(sched.submit(jobs[size_t(i)]));
        REQUIRE(ref.submit(refs[size_t(i)]));
    }
    int64_t cached = 0;
    for (int i = 0; i < 12; ++i) {
        const Event got = drain(*jobs[size_t(i)]).first, want = drain(*refs[size_t(i)]).first;
        INFO("request " << i);
        CHECK(got.finish == "length");
        CHECK(got.error.empty());
        CHECK(got.text == want.text);
        cached += got.cached_tokens;
    }
    CHECK(cached > 0);
    auto salted = job(s.tokenizer(), shared + endings[0], 3, true, -1, "tenant-b");
    REQUIRE(sched.submit(salted));
    CHECK(drain(*salted).first.cached_tokens == 0);
    for (int i = 0; i < 100 && m.running() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(s.engine().free_kv_blocks() == 40);
}
