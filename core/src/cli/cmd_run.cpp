// `imp [run] --profile P [--prompt TEXT] [-n N] [--set k=v]...` and `imp --model FILE`: load, prefill, decode,
// stream text, print timings.
#include <boost/program_options.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/profile_options.h"
#include "cli/session.h"
#include "imp/error.h"
#include "model/display_text.h"
#include "profile/profile.h"
#include "runtime/kv_block.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace po = boost::program_options;

namespace imp::cli {

void set_log_level(const std::string& level) {
    auto l = spdlog::level::from_str(level);
    if (l == spdlog::level::off && level != "off")
        throw Error("--log-level '" + level + "': expected trace, debug, info, warn, error or off");
    spdlog::set_level(l);
}

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A KV pool (runtime.kv_blocks) smaller than the positions this run stores is refused before anything is generated,
// as a prompt longer than the context is: the prompt and every generated token but the last, at most the context.
// n_option: the -n as the user gave it ("-n 40" or "generate.n_predict = 40").
void check_kv_pool(Engine& e, int64_t kv_blocks, int64_t prompt, int64_t n_predict, const std::string& n_option) {
    const int64_t cap = e.capacity(), pool = e.free_kv_blocks() * kKvBlockTokens;
    const bool to_cap = n_predict - 1 >= cap - prompt;
    const int64_t need = to_cap ? cap : prompt + n_predict - 1;
    if (need <= pool) return;
    std::string m = "runtime.kv_blocks = " + std::to_string(kv_blocks) + " holds " + std::to_string(pool) +
                    " positions, but the prompt (" + std::to_string(prompt) + " tokens) and " + n_option + " need " +
                    std::to_string(need) + (to_cap ? " (the context, runtime.max_seq_len)" : "") +
                    ": raise runtime.kv_blocks to " + std::to_string(kv_blocks_for(need));
    if (prompt <= pool)
        m += " or lower " + n_option.substr(0, n_option.find(' ')) + " to " + std::to_string(pool - prompt + 1);
    throw Error(m);
}
}  // namespace

int cmd_run(const std::vector<std::string>& args) {
    po::options_description desc(
        "imp [run] --profile FILE [options]: load the profile's model and plugins, generate text from a prompt");
    add_profile_options(desc, "profile (TOML), see configs/");
    desc.add_options()("prompt", po::value<std::string>(), "prompt text (overrides generate.prompt)")(
        "n-predict,n", po::value<int64_t>(), "tokens to generate (overrides generate.n_predict)")(
        "chat", "wrap the prompt in the model's chat template");
    po::variables_map vm;
    if (!parse_options(args, desc, vm, "imp")) return 0;

    std::vector<OptionOverride> extra;
    if (vm.count("n-predict")) {
        const std::string n = std::to_string(vm["n-predict"].as<int64_t>());
        extra.push_back({"-n " + n, "generate.n_predict=" + n});
    }
    if (vm.count("chat")) extra.push_back({"--chat", "generate.chat=\"true\""});
    Profile prof = profile_from_options(vm, extra);
    // The prompt reaches the tokenizer byte for byte (not through a TOML string: no quotes or escapes added).
    if (vm.count("prompt")) prof.generate.prompt = checked_utf8("--prompt", vm["prompt"].as<std::string>());

    auto t0 = Clock::now();
    Session s(prof);
    const double load_s = seconds_since(t0);

    const Tokenizer& tok = s.tokenizer();
    std::string text = prof.generate.prompt;
    bool chat = prof.generate.chat == "true";
    std::vector<Tokenizer::Message> msgs;
    if (chat) {
        if (!prof.generate.system.empty()) msgs.push_back({"system", prof.generate.system});
        msgs.push_back({"user", text});
    }
    // Chat: special-token text inside the prompt stays text (encode_chat); BOS only if the template wrote none.
    std::vector<int32_t> ids = chat ? tok.encode_chat(msgs, true) : tok.encode(text, tok.add_bos(), false);
    if (ids.empty()) throw Error("the prompt is empty");
    const int64_t cap = s.engine().capacity();
    if (int64_t(ids.size()) > cap)
        throw Error("prompt is " + std::to_string(ids.size()) + " tokens, longer than the context (runtime.max_seq_len = " +
                    std::to_string(cap) + ")");
    check_kv_pool(s.engine(), prof.runtime.kv_blocks, int64_t(ids.size()), prof.generate.n_predict,
                  vm.count("n-predict") ? "-n " + std::to_string(prof.generate.n_predict)
                                        : "generate.n_predict = " + std::to_string(prof.generate.n_predict));

    SamplingParams sp;
    sp.temperature = float(prof.sampling.temperature);
    sp.top_k = int32_t(prof.sampling.top_k);  // the profile bounds it to int32
    sp.top_p = float(prof.sampling.top_p);
    sp.min_p = float(prof.sampling.min_p);
    sp.repeat_penalty = float(prof.sampling.repeat_penalty);
    sp.seed = prof.sampling.seed;
    const int64_t last_n = prof.sampling.repeat_last_n < 0 ? cap : prof.sampling.repeat_last_n;
    std::vector<int32_t> history = ids;

    if (!chat) std::fputs(prof.generate.prompt.c_str(), stdout);
    std::fflush(stdout);
    auto t1 = Clock::now();
    s.engine().forward(ids.data(), int64_t(ids.size()));
    s.executor().synchronize();  // the prompt's kernels may still be queued: their time is the prompt's
    const double prompt_s = seconds_since(t1);

    StreamDecoder dec(tok);
    auto t2 = Clock::now();
    int64_t generated = 0;
    bool hit_cap = false;
    for (int64_t i = 0; i < prof.generate.n_predict; ++i) {
        const int64_t n_recent = std::min<int64_t>(last_n, int64_t(history.size()));
        int32_t next = s.engine().sample(sp, uint64_t(i), history.data() + history.size() - n_recent, n_recent);
        history.push_back(next);
        ++generated;
        if (tok.is_eog(next)) break;
        std::fputs(dec.push(next).c_str(), stdout);
        std::fflush(stdout);
        if (i + 1 == prof.generate.n_predict) break;
        if (s.engine().position() >= cap) {
            hit_cap = true;
            break;
        }
        s.engine().forward(&next, 1);
    }
    std::fputs(dec.flush().c_str(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    const double gen_s = seconds_since(t2);
    if (hit_cap) std::fprintf(stderr, "[stopped: context full at %lld tokens (runtime.max_seq_len)]\n", (long long)cap);
    std::fprintf(stderr, "load %.2f s | prompt %zu tokens, %.1f tok/s | generation %lld tokens, %.1f tok/s | %s\n", load_s,
                 ids.size(), double(ids.size()) / prompt_s, (long long)generated,
                 generated > 1 ? double(generated - 1) / gen_s : 0.0, s.executor_name().c_str());
    return 0;
}

}  // namespace imp::cli
