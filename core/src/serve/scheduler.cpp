// See scheduler.h.
#include "serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <spdlog/spdlog.h>

#include "serve/release_finished.h"
#include "serve/step_plan.h"
#include "serve/stop_matcher.h"

namespace imp::serve {

struct Scheduler::Active {
    Active(std::shared_ptr<Job> j, SeqId s, int64_t need, const Tokenizer& tok)
        : job(std::move(j)), seq(s), need(need), dec(tok), stop(job->request().stop) {
        history = job->request().prompt_ids;
    }
    std::shared_ptr<Job> job;
    SeqId seq;
    int64_t need;                  // KV blocks committed to it
    int64_t prefilled = 0;         // prompt tokens already run (or taken from the prefix cache)
    int64_t cached = 0;            // prompt tokens taken from the prefix cache
    std::vector<int32_t> history;  // prompt + generated
    int64_t generated = 0;
    int32_t last = 0;              // the token to run next (decode)
    StreamDecoder dec;
    StopMatcher stop;
    Clock::time_point last_token;
    bool done = false;
    int64_t prompt_len() const { return int64_t(job->request().prompt_ids.size()); }
};

namespace {

// log-softmax of one row: the chosen token's logprob and the k most likely tokens.
TokenLogprob logprobs_of(const float* row, int64_t n_vocab, int32_t chosen, int k) {
    const float mx = *std::max_element(row, row + n_vocab);
    double sum = 0;
    for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(double(row[i] - mx));
    const float lse = mx + float(std::log(sum));
    TokenLogprob t;
    t.id = chosen;
    t.logprob = row[chosen] - lse;
    if (k > 0) {
        std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
        std::iota(idx.begin(), idx.end(), 0);
        const auto better = [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); };
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
        for (int i = 0; i < k; ++i) t.top.push_back({idx[size_t(i)], row[idx[size_t(i)]] - lse});
    }
    return t;
}

Event error_event(const std::string& msg) {
    Event e;
    e.finish = "error";
    e.error = msg;
    return e;
}

}  // namespace

Scheduler::Scheduler(Engine& engine, const Tokenizer& tok, Metrics& metrics, const SchedulerOptions& opt)
    : engine_(engine), tok_(tok), metrics_(metrics), opt_(opt), total_blocks_(engine.free_kv_blocks()) {
    opt_.step_tokens = std::max<int64_t>(opt_.step_tokens, 1);  // a prompt always gets a row
    publish_gauges();
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { stop(); }

bool Scheduler::submit(const std::shared_ptr<Job>& job) {
    {
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_ || int64_t(waiting_.size()) >= opt_.max_queue) return false;
        waiting_.push_back(job);
    }
    cv_.notify_all();
    return true;
}

void Scheduler::stop() {
    {
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool Scheduler::stopping() {
    std::lock_guard<std::mutex> l(mu_);
    return stopping_;
}

void Scheduler::publish_gauges() {
    size_t waiting;
    {
        std::lock_guard<std::mutex> l(mu_);
        waiting = waiting_.size();
    }
    const int64_t free = engine_.free_kv_blocks();
    metrics_.gauges(int64_t(active_.size()), int64_t(waiting), total_blocks_ - free, free);
}

Event Scheduler::finish(Active& a, const std::string& reason, Event ev) {
    if (reason != "error") ev.text += a.stop.push(a.dec.flush()) + a.stop.flush();
    ev.finish = reason;
    ev.completion_tokens = a.generated;
    ev.cached_tokens = a.cached;
    a.done = true;
    return ev;
}

void Scheduler::flush() {
    for (auto& o : outbox_) o.job->post(std::move(o.ev));
    outbox_.clear();
}

void Scheduler::fail_all(const std::string& msg) {
    flush();  // what was computed before the failure still reaches its request, ahead of the error
    for (auto& a : active_)
        if (!a->done) a->job->post(finish(*a, "error", error_event(msg)));
}

void Scheduler::release_done() {
    release_finished(
        active_, [](const std::unique_ptr<Active>& a) { return a->done || a->job->cancelled(); },
        [&](const std::unique_ptr<Active>& a) {
            engine_.release_sequence(a->seq);
            committed_ -= a->need;
        });
}

void Scheduler::admit() {
    std::lock_guard<std::mutex> l(mu_);
    // Requests cancelled while waiting leave the queue without running.
    std::erase_if(waiting_, [](const std::shared_ptr<Job>& j) { return j->cancelled(); });
    while (!waiting_.empty() && int64_t(active_.size()) < engine_.max_seqs()) {
        const auto& j = waiting_.front();
        const int64_t need = blocks_for(int64_t(j->request().prompt_ids.size()) + j->request().max_tokens);
        if (committed_ + need > total_blocks_) break;  // first come, first served: wait for blocks
        const SeqId s = engine_.add_sequence();
        active_.push_back(std::make_unique<Active>(j, s, need, tok_));
        if (engine_.prefix_cache()) {  // (blocks stay committed in full: shared ones only save compute)
            Active& a = *active_.back();
            const std::string& salt = j->request().cache_salt;
            const uint64_t sv = salt.empty() ? 0 : std::hash<std::string>{}(salt) | 1;  // nonzero: apart from unsalted
            a.cached = a.prefilled = engine_.attach_prefix(s, j->request().prompt_ids, sv);
            metrics_.prefix_cache(a.prompt_len(), a.cached);
        }
        committed_ += need;
        waiting_.pop_front();
    }
}

void Scheduler::loop() {
    std::vector<SeqWork> work;
    std::vector<Active*> rows;
    Clock::time_point last_step_end{};  // when the previous step's tokens came back, if the last iteration ran one
    for (;;) {
        {
            std::unique_lock<std::mutex> l(mu_);
            if (!stopping_ && active_.empty() && waiting_.empty() && outbox_.empty())
                cv_.wait_for(l, std::chrono::milliseconds(200));
            if (stopping_) break;
        }
        release_done();  // cancelled ones too: their blocks are free for this admission
        admit();
        publish_gauges();  // before any output of a newly admitted request, so it never arrives ahead of "running"
        bool launched = false;
        int64_t decode_rows = 0;
        try {
            launched = launch(work, rows, decode_rows);
        } catch (const std::exception& e) {
            spdlog::error("serve: step failed: {}", e.what());
            fail_all(e.what());
        }
        if (launched) publish_gauges();  // the step took its KV blocks: published before its tokens go out
        flush();  // the previous step's output, while the device runs this one
        if (launched) {
            try {
                collect(work, rows);
            } catch (const std::exception& e) {
                spdlog::error("serve: sampling failed: {}", e.what());
                fail_all(e.what());
            }
            int64_t n = 0;
            for (const SeqWork& w : work) n += w.n;
            metrics_.step(n, decode_rows, std::chrono::duration<double>(sampled_at_ - launched_at_).count(),
                          last_step_end != Clock::time_point{}
                              ? std::chrono::duration<double>(launched_at_ - last_step_end).count()
                              : -1.0);
            last_step_end = sampled_at_;
        } else {
            last_step_end = Clock::time_point{};
        }
        release_done();  // finished sequences give their blocks back before their last output is posted
        publish_gauges();
    }
    // Shutdown: what was computed goes out, then everyone still here gets an error.
    flush();
    for (auto& a : active_) {
        if (!a->done) a->job->post(finish(*a, "error", error_event(kShuttingDown)));
        engine_.release_sequence(a->seq);
    }
    active_.clear();
    std::lock_guard<std::mutex> l(mu_);
    for (auto& j : waiting_) j->post(error_event(kShuttingDown));
    waiting_.clear();
}

bool Scheduler::launch(std::vector<SeqWork>& work, std::vector<Active*>& rows, int64_t& decode_rows) {
    work.clear();
    rows.clear();
    decode_rows = 0;
    std::vector<PlanRequest> reqs(active_.size());
    for (size_t i = 0; i < active_.size(); ++i) {
        const Active& a = *active_[i];
        reqs[i] = {a.prompt_len(), a.prefilled, a.done || a.job->cancelled()};
    }
    for (const PlanItem& it : plan_step(reqs, opt_.step_tokens)) {
        Active& a = *active_[it.request];
        work.push_back({a.seq, it.decode ? &a.last : a.job->request().prompt_ids.data() + it.off, it.n});
        rows.push_back(&a);
        decode_rows += it.decode;
    }
    if (work.empty()) return false;
    launched_at_ = Clock::now();
    engine_.step(work);
    return true;
}

void Scheduler::collect(const std::vector<SeqWork>& work, const std::vector<Active*>& rows) {
    std::vector<SeqSample> samples(work.size());
    std::vector<int> lp_items;  // rows whose request asked for logprobs: only their logits come to the host
    for (size_t i = 0; i < rows.size(); ++i) {
        Active& a = *rows[i];
        // No penalty, no history to upload.
        const int64_t n_recent = a.job->request().sampling.repeat_penalty == 1.f
                                     ? 0
                                     : std::min<int64_t>(opt_.repeat_last_n, int64_t(a.history.size()));
        samples[i] = SeqSample{a.job->request().sampling, uint64_t(a.generated),
                               a.history.data() + a.history.size() - n_recent, n_recent};
        if (a.job->request().logprobs) lp_items.push_back(int(i));
    }
    std::vector<int32_t> next(work.size());
    engine_.sample(samples, next.data());
    const int64_t n_vocab = engine_.desc().n_vocab;
    std::vector<float> logits(lp_items.size() * size_t(n_vocab));
    if (!lp_items.empty()) engine_.last_logits(lp_items, logits.data());
    sampled_at_ = Clock::now();

    const auto now = Clock::now();
    int64_t prompt_done = 0, generated = 0;
    size_t lp = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
        Active& a = *rows[i];
        const GenRequest& r = a.job->request();
        const float* row_logits = r.logprobs ? logits.data() + (lp++) * size_t(n_vocab) : nullptr;
        if (a.prefilled < a.prompt_len()) {
            a.prefilled += work[i].n;
            if (a.prefilled < a.prompt_len()) continue;  // mid-prompt: this row's token is not used
            metrics_.first_token(std::chrono::duration<double>(now - a.job->arrived()).count());
            prompt_done += a.prompt_len();
        } else {
            metrics_.inter_token(std::chrono::duration<double>(now - a.last_token).count());
        }
        a.last_token = now;
        const int32_t tok = next[i];
        a.history.push_back(tok);
        a.last = tok;
        ++a.generated;
        ++generated;
        Event ev;
        if (row_logits) ev.logprobs.push_back(logprobs_of(row_logits, n_vocab, tok, r.top_logprobs));
        if (tok_.is_eog(tok) && !r.ignore_eos) {
            outbox_.push_back({a.job, finish(a, "stop", std::move(ev))});
            continue;
        }
        ev.text = a.stop.push(a.dec.push(tok));
        if (a.stop.stopped()) {
            ev = finish(a, "stop", std::move(ev));
        } else if (a.generated >= r.max_tokens) {
            ev = finish(a, "length", std::move(ev));
        } else {
            ev.completion_tokens = a.generated;
            ev.cached_tokens = a.cached;
        }
        outbox_.push_back({a.job, std::move(ev)});
    }
    metrics_.tokens(prompt_done, generated);
}

}  // namespace imp::serve
