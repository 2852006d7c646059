// `imp plan --profile P`: everything `imp run` decides before it uploads a byte — the plugins (ABI, build key), their
// settings, the layers and the registered ops each needs (and whether this executor runs them), the quant format
// chosen for every weight, and the memory plan against the executor's free memory.
#include <boost/program_options.hpp>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/profile_options.h"
#include "cli/session.h"
#include "imp/error.h"
#include "runtime/load_plan.h"

namespace po = boost::program_options;

namespace imp::cli {

namespace {

void print_settings(const Registry& reg) {
    std::printf("settings:\n");
    for (const Settings* s : reg.all_settings()) {
        if (s->specs().empty()) continue;
        for (const auto& spec : s->specs())
            std::printf("  [plugin.%s] %s = %s%s\n", s->plugin().c_str(), spec.key.c_str(),
                        setting_text(s->get(spec.key)).c_str(), s->is_set(spec.key) ? "" : "  (default)");
    }
}

// "0-29", "0, 2, .., 58" (a step), or the first few and a count.
std::string layer_list(const std::vector<int>& v) {
    if (v.size() == 1) return std::to_string(v[0]);
    const int step = v[1] - v[0];
    bool regular = step > 0;
    for (size_t i = 1; i < v.size() && regular; ++i) regular = v[i] - v[i - 1] == step;
    if (regular && step == 1) return std::to_string(v.front()) + "-" + std::to_string(v.back());
    if (regular && v.size() > 3)
        return std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", .., " + std::to_string(v.back());
    std::string s;
    for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return v.size() > 8 ? s + ", .. (" + std::to_string(v.size()) + " layers)" : s;
}

}  // namespace

int cmd_plan(const std::vector<std::string>& args) {
    po::options_description desc(
        "imp plan --profile FILE [options]: what loading the profile would do, without uploading anything: plugins, "
        "settings, layers and their ops, the quant format of every weight, the memory plan");
    add_profile_options(desc, "profile (TOML), see configs/");
    po::variables_map vm;
    if (!parse_options(args, desc, vm, "imp plan")) return 0;
    const Profile prof = profile_from_options(vm, {});
    Session s(prof, Session::Mode::Plan);
    const EnginePlan& p = s.plan();
    const Registry& reg = s.registry();

    std::printf("model:    %s\n", s.model().path().c_str());
    std::printf("arch:     %s (plugin %s)\n", p.arch.c_str(), p.arch_plugin.c_str());
    std::printf("executor: %s\n", s.executor_name().c_str());
    std::printf("plugins (host build key %s):\n", host_build_key().c_str());
    for (const auto& pi : s.loader().loaded())
        std::printf("  %-14s %-8s ABI %u.%u  %s  key %s\n", pi.name.c_str(), pi.version.c_str(), pi.abi_major,
                    pi.abi_minor, pi.path.c_str(), pi.build_key == host_build_key() ? "= host" : pi.build_key.c_str());
    print_settings(reg);

    size_t n_layers = 0;
    for (const auto& g : p.layers) n_layers += g.layers.size();
    std::printf("layers (%zu, embedding %lld, vocabulary %lld):\n", n_layers, (long long)p.n_embd,
                (long long)p.n_vocab);
    for (const auto& g : p.layers) {
        std::printf("  %-24s state %-32s layers %s\n", g.kind.c_str(), g.state.c_str(),
                    layer_list(g.layers).c_str());
        if (g.ops.empty()) std::printf("          (no registered ops; executor ops only)\n");
        for (size_t i = 0; i < g.ops.size(); ++i)
            std::printf("          op %-28s %s\n", g.ops[i].c_str(),
                        g.op_problems[i].empty() ? "supported" : ("NOT SUPPORTED: " + g.op_problems[i]).c_str());
    }

    std::printf("weights:\n  %-40s %-9s %-18s %-18s %-8s %10s  %s\n", "name", "role", "shape", "format", "type",
                "bytes", "from");
    for (const auto& w : p.weights) {
        const std::string fmt = w.plugin.empty() ? w.format : w.format + " (" + w.plugin + ")";
        std::printf("  %-40s %-9s %-18s %-18s %-8s %10s  %s\n", w.name.c_str(), w.role.c_str(),
                    shape_str(w.shape).c_str(), fmt.c_str(), w.type.c_str(), human_bytes(w.bytes).c_str(),
                    w.source.c_str());
    }

    const MemoryPlan& m = p.memory;
    const uint64_t total = m.total() + round64(p.workspace);
    std::printf("memory plan:\n");
    std::printf("  weights      %12s  (%d fused matrices)\n", human_bytes(m.weights).c_str(), m.fused);
    std::printf("  KV / state   %12s  (max_seq_len %lld x max_seqs %d, %lld KV blocks of 16)\n",
                human_bytes(m.state).c_str(), (long long)p.capacity, p.max_seqs, (long long)m.kv_blocks);
    std::printf("  activations  %12s  (%lld rows per pass, prefill chunk %lld)\n", human_bytes(m.activations).c_str(),
                (long long)p.rows, (long long)p.prefill_chunk);
    std::printf("  scratch      %12s\n", human_bytes(m.scratch).c_str());
    std::printf("  workspace    %12s  (as the formats planned it; loaded weights may ask for more)\n",
                human_bytes(p.workspace).c_str());
    std::printf("  total        %12s  of %s free: %s\n", human_bytes(total).c_str(), human_bytes(p.available).c_str(),
                total <= p.available ? "fits" : "DOES NOT FIT");
    int unsupported = 0;
    for (const auto& g : p.layers)
        for (const auto& e : g.op_problems) unsupported += !e.empty();
    return total <= p.available && unsupported == 0 ? 0 : 1;
}

}  // namespace imp::cli
