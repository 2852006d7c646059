// Engine::preflight: the engine's prepare step (arch build, op checks, load plan, memory plan) turned into a report
// for `imp plan`, with nothing allocated on the executor.
#include <algorithm>

#include "imp/quant_format.h"
#include "runtime/engine_impl.h"

namespace imp {

namespace {

std::string state_text(const StateSpec& st) {
    switch (st.kind) {
        case StateSpec::Kind::KV:
            return "KV " + std::to_string(st.n_kv_heads) + " x " + std::to_string(st.head_dim);
        case StateSpec::Kind::Recurrent: {
            std::string c;
            for (const auto& comp : st.components) c += (c.empty() ? "" : ", ") + comp.name;
            return "recurrent " + human_bytes(st.slot_bytes()) + " per sequence (" + c + ")";
        }
        case StateSpec::Kind::None: break;
    }
    return "none";
}

std::string source_text(const WeightSource& s) { return s.describe(); }

}  // namespace

EnginePlan Engine::preflight(const ModelSource& src, const Registry& reg, Executor& ex, const EngineOptions& opt) {
    Impl m(src, reg, ex, opt);
    m.prepare();
    EnginePlan r;
    const Arch* arch = reg.find_arch(src);
    r.arch = arch->name();
    r.arch_plugin = reg.plugin_of("arch", r.arch);
    r.n_embd = m.desc.n_embd;
    r.n_vocab = m.desc.n_vocab;
    r.capacity = m.capacity;
    r.prefill_chunk = m.chunk;
    r.rows = m.rows;
    r.max_seqs = opt.max_seqs;
    r.memory = m.plan;
    r.workspace = m.lp->workspace_bytes;
    r.available = ex.available_bytes();
    for (size_t i = 0; i < m.desc.layers.size(); ++i) {
        const Layer& l = *m.desc.layers[i];
        EnginePlan::LayerGroup g;
        g.kind = l.kind();
        g.state = state_text(l.state());
        g.ops = l.required_ops();
        auto same = std::find_if(r.layers.begin(), r.layers.end(), [&](const EnginePlan::LayerGroup& o) {
            return o.kind == g.kind && o.state == g.state && o.ops == g.ops;
        });
        if (same != r.layers.end()) {
            same->layers.push_back(int(i));
            continue;
        }
        g.layers.push_back(int(i));
        for (const auto& op : g.ops) g.op_problems.push_back(reg.check_ops({op}, ex));
        r.layers.push_back(std::move(g));
    }
    for (const auto& w : m.lp->weights) {
        if (!w.present || w.absorbed) continue;
        EnginePlan::WeightRow row;
        row.name = w.spec.name;
        row.shape = w.spec.shape;
        if (w.spec.use == WeightSpec::Use::Vector) {
            row.role = "vector";
            row.format = "core";
            row.type = w.tensor ? w.tensor->type : "computed";
            row.source = w.tensor ? w.tensor->name : "(computed)";
        } else {
            row.role = role_name(w.role);
            row.format = w.format ? w.format->name() : "";
            row.plugin = w.format ? reg.plugin_of("format", row.format) : "";
            row.type = w.plan.type;
            row.source = source_text(w.request.source);
        }
        row.bytes = w.device_bytes;
        r.weights.push_back(std::move(row));
    }
    return r;
}

}  // namespace imp
