// `imp serve --profile P [--host H] [--port N]`: load the profile's model and serve the OpenAI API on it (see
// core/src/serve/). Runs until SIGINT or SIGTERM, then stops accepting, ends open requests with an error (streams
// still end with [DONE]) and exits cleanly.
#include <signal.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "cli/profile_options.h"
#include "cli/session.h"
#include "imp/error.h"
#include "model/display_text.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/openai_api.h"
#include "serve/scheduler.h"

namespace po = boost::program_options;

namespace imp::cli {

int cmd_serve(const std::vector<std::string>& args) {
    po::options_description desc("imp serve --profile FILE [options]: an OpenAI-compatible HTTP server ([server] keys)");
    add_profile_options(desc, "profile (TOML), see configs/");
    desc.add_options()("host", po::value<std::string>(), "address to listen on (overrides server.host)")(
        "port", po::value<int>(), "port, 0 = any free one (overrides server.port)");
    po::variables_map vm;
    if (!parse_options(args, desc, vm, "imp serve")) return 0;
    std::vector<OptionOverride> extra;
    if (vm.count("host")) {
        const std::string& h = vm["host"].as<std::string>();
        extra.push_back({"--host " + display_text(h), "server.host=" + h, true});
    }
    if (vm.count("port")) {
        const std::string p = std::to_string(vm["port"].as<int>());
        extra.push_back({"--port " + p, "server.port=" + p});
    }
    const Profile prof = profile_from_options(vm, extra);
    if (const std::string why = serve::host_error(prof.server.host); !why.empty())  // before the model loads
        throw Error(prof.where("server.host") + ": key 'server.host': " + why);

    // Signals go to this thread's sigwait only; a client that hangs up must not kill the server (SIGPIPE).
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    Session s(prof, Session::Mode::Serve);
    const Tokenizer& tok = s.tokenizer();
    // Every decode batch size's graph now, so that no request's step pays for a capture.
    const int graphs = s.engine().capture_decode_graphs();
    serve::Metrics metrics;
    serve::SchedulerOptions so;
    so.max_queue = prof.server.max_queue;
    so.step_tokens = prof.server.step_tokens > 0 ? prof.server.step_tokens : prof.runtime.prefill_chunk;
    so.repeat_last_n = prof.sampling.repeat_last_n < 0 ? s.engine().capacity() : prof.sampling.repeat_last_n;
    serve::Scheduler sched(s.engine(), tok, metrics, so);

    serve::ApiOptions ao;
    ao.model_name = prof.server.model_name.empty() ? std::filesystem::path(prof.model.path).stem().string()
                                                   : prof.server.model_name;
    ao.context = s.engine().capacity();
    ao.defaults.temperature = float(prof.sampling.temperature);
    ao.defaults.top_k = int32_t(prof.sampling.top_k);
    ao.defaults.top_p = float(prof.sampling.top_p);
    ao.defaults.min_p = float(prof.sampling.min_p);
    ao.defaults.repeat_penalty = float(prof.sampling.repeat_penalty);
    ao.defaults.seed = prof.sampling.seed;
    serve::Api api(sched, metrics, tok, ao);
    serve::HttpServer http(prof.server.host, int(prof.server.port),
                           [&](const serve::HttpRequest& r, serve::Responder& out) { api.handle(r, out); });
    // The name comes from --set or the file name: control characters are escaped, not sent to the terminal.
    std::printf("imp serve: listening on %s (model %s, %d sequences, %lld KV blocks, context %lld, "
                "%d decode graphs)\n",
                serve::http_url(prof.server.host, http.port()).c_str(), display_text(ao.model_name).c_str(),
                s.engine().max_seqs(),
                (long long)sched.kv_blocks_total(), (long long)ao.context, graphs);
    std::fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    std::printf("imp serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    std::fflush(stdout);
    http.stop_accepting();  // no new connections; those waiting for a request close
    sched.stop();           // requests still running or queued end with "the server is shutting down" ...
    http.stop(std::chrono::seconds(5));  // ... which their handlers send (a stream: an error event, then [DONE])
    return 0;
}

}  // namespace imp::cli
