#include "runtime/load_plan.h"

#include <algorithm>

#include "imp/error.h"
#include "model/quant_config.h"
#include "runtime/layer_name.h"
#include "runtime/weight_sources.h"

namespace imp {

namespace {

std::vector<PlannedWeight> collect(const ModelSource& src, const ModelDesc& desc) {
    std::vector<PlannedWeight> out;
    std::map<std::string, size_t> index;
    auto add = [&](const WeightSpec& s, const std::string& user, WeightRole role) {
        auto it = index.find(s.name);
        if (it == index.end()) {
            index[s.name] = out.size();
            PlannedWeight w;
            w.spec = s;
            w.user = user;
            w.role = s.use == WeightSpec::Use::Experts ? WeightRole::Experts : role;
            out.push_back(std::move(w));
            return;
        }
        PlannedWeight& prev = out[it->second];
        if (prev.spec.shape != s.shape || prev.spec.use != s.use)
            throw Error(src.path() + ": weight '" + s.name + "' is requested as " + shape_str(prev.spec.shape) +
                        " by " + prev.user + " and as " + shape_str(s.shape) + " by " + user);
        prev.spec.optional = prev.spec.optional && s.optional;
    };
    WeightSpec emb;
    emb.name = desc.tok_embd;
    emb.shape = {desc.n_vocab, desc.n_embd};
    add(emb, "token embedding", WeightRole::Embedding);
    for (size_t i = 0; i < desc.layers.size(); ++i) {
        const std::string user = layer_label(*desc.layers[i], i);
        for (const auto& s : desc.layers[i]->weight_specs()) add(s, user, WeightRole::Linear);
    }
    WeightSpec norm;
    norm.name = desc.output_norm;
    norm.shape = {desc.n_embd};
    norm.use = WeightSpec::Use::Vector;
    add(norm, "output norm", WeightRole::Linear);
    WeightSpec head = emb;
    head.name = desc.output;
    add(head, "LM head", WeightRole::LmHead);  // tied to the embedding: one weight, role Embedding
    return out;
}

class Planner {
public:
    Planner(const ModelSource& src, const Registry& reg, const Executor& ex, const PlanOptions& opt, LoadPlan& out)
        : src_(src), reg_(reg), ex_(ex), opt_(opt), out_(out), index_(src) {
        if (opt.formats.empty()) {
            formats_ = reg.formats();
        } else {
            for (const auto& n : opt.formats) {
                const QuantFormat* f = reg.find_format(n);
                if (!f)
                    throw Error((opt.formats_where.empty() ? "" : opt.formats_where + ": ") +
                                "key 'model.formats': unknown quant format '" + n + "' (registered: " +
                                format_names(reg.formats()) + ")");
                formats_.push_back(f);
            }
        }
    }

    void plan(PlannedWeight& w);
    void plan_fused(std::vector<PlannedWeight>& ws);

private:
    void plan_vector(PlannedWeight& w);
    bool build_source(PlannedWeight& w, WeightSource& s);
    void choose(PlannedWeight& w);
    void check_consumed(const QuantFormat& f, const WeightRequest& req, const WeightPlan& p) const;
    // The settings of the plugin that registered f ([plugin.<name>]; an empty set for a format of no plugin).
    const Settings& format_settings(const QuantFormat& f) const {
        const std::string plugin = reg_.plugin_of("format", f.name());
        static const Settings none;
        return plugin.empty() ? none : reg_.settings(plugin);
    }
    static std::string format_names(const std::vector<const QuantFormat*>& fs) {
        std::string r;
        for (const auto* f : fs) r += (r.empty() ? "" : ", ") + f->name();
        return r.empty() ? "none" : r;
    }

    const ModelSource& src_;
    const Registry& reg_;
    const Executor& ex_;
    const PlanOptions& opt_;
    LoadPlan& out_;
    TensorIndex index_;
    std::vector<const QuantFormat*> formats_;
};

void Planner::plan_vector(PlannedWeight& w) {
    const WeightSpec& s = w.spec;
    int64_t numel = 1;
    for (auto d : s.shape) numel *= d;
    w.device_bytes = round64(uint64_t(numel) * 4);
    if (!s.values.empty()) {
        if (int64_t(s.values.size()) != numel)
            throw Error(src_.path() + ": computed weight '" + s.name + "' of " + w.user + " has " +
                        std::to_string(s.values.size()) + " values for shape " + shape_str(s.shape));
        w.present = true;
        return;
    }
    w.tensor = index_.find(s.name);
    if (!w.tensor) {
        if (s.optional) return;
        throw Error(src_.path() + ": tensor '" + s.name + "' needed by " + w.user + " is missing");
    }
    if (w.tensor->shape != s.shape)
        throw Error(src_.path() + ": tensor '" + s.name + "' has shape " + shape_str(w.tensor->shape) + ", expected " +
                    shape_str(s.shape) + " (" + w.user + ")");
    const std::string& ty = w.tensor->type;
    const uint64_t es = ty == "F32" ? 4 : (ty == "F16" || ty == "BF16") ? 2 : 0;
    if (es == 0)
        throw Error(src_.path() + ": tensor '" + s.name + "' has type " + ty +
                    "; vector weights must be F32, F16 or BF16");
    if (w.tensor->nbytes != uint64_t(numel) * es)
        throw Error(src_.path() + ": tensor '" + s.name + "' holds " + std::to_string(w.tensor->nbytes) +
                    " bytes, expected " + std::to_string(uint64_t(numel) * es) + " for " + ty + shape_str(s.shape));
    w.present = true;
}

// The file tensors of a Matrix / Experts weight; false for an absent optional weight.
bool Planner::build_source(PlannedWeight& w, WeightSource& s) {
    const WeightSpec& spec = w.spec;
    s = index_.source(spec.name);
    if (!s.main && spec.use == WeightSpec::Use::Experts && !spec.expert_pattern.empty()) {
        s = {};  // tensors under the name's prefix (e.g. the per-expert ones themselves) are not this weight's
        for (int64_t e = 0; e < spec.shape[0]; ++e) {
            const std::string name = expert_tensor_name(spec.expert_pattern, e);
            WeightSource es = index_.source(name);
            if (source_empty(es)) {
                if (e == 0 && spec.optional) return false;
                throw Error(src_.path() + ": expert tensor '" + name + "' (expert " + std::to_string(e) + " of " +
                            std::to_string(spec.shape[0]) + ") needed by " + w.user + " is missing");
            }
            s.experts.push_back(std::move(es));
        }
    }
    if (!source_empty(s)) return true;
    if (spec.optional) return false;
    throw Error(src_.path() + ": tensor '" + spec.name + "' needed by " + w.user + " is missing" +
                (spec.expert_pattern.empty() ? "" : " (and so is '" + expert_tensor_name(spec.expert_pattern, 0) + "')"));
}

void Planner::plan(PlannedWeight& w) {
    const WeightSpec& s = w.spec;
    if (w.absorbed || !s.concat.empty()) return;  // fused weights: plan_fused
    if (s.use == WeightSpec::Use::Vector) return plan_vector(w);
    if (!s.values.empty())
        throw Error(src_.path() + ": computed weight '" + s.name + "' of " + w.user + " must be a vector weight");
    const size_t dims = s.use == WeightSpec::Use::Experts ? 3 : 2;
    if (s.shape.size() != dims || std::any_of(s.shape.begin(), s.shape.end(), [](int64_t d) { return d <= 0; }))
        throw Error(src_.path() + ": weight '" + s.name + "' of " + w.user + " is declared as " + shape_str(s.shape) +
                    (dims == 3 ? "; expert weights are [n_expert, rows, cols]" : "; matrices are [rows, cols]"));
    WeightRequest& req = w.request;
    req.name = s.name;
    req.role = w.role;
    req.shape = s.shape;
    req.config = out_.quant.get();
    req.max_tokens = std::max<int64_t>(1, opt_.max_tokens);
    req.top_k = std::max<int64_t>(1, s.top_k);
    if (!build_source(w, req.source)) return;
    choose(w);
    w.present = true;
}

void Planner::check_consumed(const QuantFormat& f, const WeightRequest& req, const WeightPlan& p) const {
    const auto all = source_tensors(req.source);
    for (const auto* t : p.consumed)
        if (std::find(all.begin(), all.end(), t) == all.end())
            throw Error("quant format " + f.name() + " plans to read tensor '" + (t ? t->name : "(null)") +
                        "', which is not one of weight '" + req.name + "'");
}

// One format for w: the first accepting one of the profile's list, else the accepting one of highest priority.
void Planner::choose(PlannedWeight& w) {
    const WeightRequest& req = w.request;
    std::string reasons;
    const QuantFormat* best = nullptr;
    const QuantFormat* tie = nullptr;
    WeightPlan best_plan;
    for (const QuantFormat* f : formats_) {
        std::string why = capability_problem(*f, opt_.compute_capability);
        WeightPlan p;
        if (why.empty()) {
            w.request.settings = &format_settings(*f);
            p = f->plan(req, ex_);
            if (!p.accepted) why = p.reason.empty() ? "refused" : p.reason;
        }
        if (!why.empty()) {
            reasons += (reasons.empty() ? "" : "; ") + f->name() + ": " + why;
            continue;
        }
        if (!best || f->priority() > best->priority()) {
            best = f, tie = nullptr, best_plan = std::move(p);
            if (!opt_.formats.empty()) break;  // the profile's order decides
        } else if (f->priority() == best->priority()) {
            tie = f;
        }
    }
    const std::string what = "weight '" + req.name + "' (" + source_summary(req.source) + ")";
    if (tie)
        throw Error(src_.path() + ": quant formats '" + best->name() + "' and '" + tie->name() +
                    "' (both priority " + std::to_string(best->priority()) + ") both take " + what + " of " + w.user +
                    "; list the one to use in the profile's [model] formats");
    if (!best)
        throw Error(src_.path() + ": no loaded quant format takes " + what + " as " + role_name(req.role) + " " +
                    shape_str(req.shape) + " for " + w.user + (reasons.empty() ? " (no quant formats loaded)" : ": ") +
                    reasons);
    if (best_plan.shape != req.shape)
        throw Error(src_.path() + ": " + what + " reads as " + shape_str(best_plan.shape) + " through quant format " +
                    best->name() + ", expected " + shape_str(req.shape) + " (" + w.user + ")");
    check_consumed(*best, req, best_plan);
    w.request.settings = &format_settings(*best);
    w.format = best;
    w.plan = std::move(best_plan);
    w.device_bytes = w.plan.device_bytes;
}

// Fused (row-concatenated) weights: built when every part is a planned matrix requested by nothing else, the rows
// add up, all parts went to one format and that format's plan accepts the concatenation (each part keeps its own
// scales). The parts are then absorbed (not loaded on their own); otherwise the fused weight is not built.
// Expert weights fuse the same way, per expert: parts [n_expert, rows_i, cols] -> [n_expert, sum rows_i, cols].
void Planner::plan_fused(std::vector<PlannedWeight>& ws) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < ws.size(); ++i) index[ws[i].spec.name] = i;
    std::map<std::string, int> wanted;  // how many fused weights name each part
    for (const auto& w : ws)
        for (const auto& p : w.spec.concat) ++wanted[p];
    for (auto& w : ws) {
        const WeightSpec& s = w.spec;
        if (s.concat.empty()) continue;
        const bool experts = s.use == WeightSpec::Use::Experts;
        if (!(experts ? s.shape.size() == 3 : s.use == WeightSpec::Use::Matrix && s.shape.size() == 2) ||
            index_.find(s.name))
            throw Error(src_.path() + ": fused weight '" + s.name + "' of " + w.user +
                        " must be a 2-D matrix (or 3-D experts) whose name is not a tensor of the file");
        if (!opt_.fuse) continue;
        WeightRequest req;
        req.name = s.name;
        req.shape = s.shape;
        req.config = out_.quant.get();
        req.max_tokens = std::max<int64_t>(1, opt_.max_tokens);
        req.role = w.role;
        req.top_k = std::max<int64_t>(1, s.top_k);
        const size_t rd = s.shape.size() - 2;  // the rows' dimension
        const QuantFormat* f = nullptr;
        int64_t rows = 0;
        bool ok = true;
        for (const auto& p : s.concat) {
            const auto it = index.find(p);
            if (it == index.end() || wanted[p] != 1) {
                ok = false;
                break;
            }
            const PlannedWeight& part = ws[it->second];
            if (!part.present || part.absorbed || part.spec.use != s.use || part.spec.shape.size() != s.shape.size() ||
                part.spec.shape.back() != s.shape.back() || (experts && part.spec.shape[0] != s.shape[0]) ||
                (f && part.format != f)) {
                ok = false;
                break;
            }
            f = part.format;
            rows += part.spec.shape[rd];
            req.source.parts.push_back(part.request.source);
        }
        if (!ok || rows != s.shape[rd]) continue;
        req.settings = &format_settings(*f);
        WeightPlan p = f->plan(req, ex_);
        if (!p.accepted) continue;
        if (p.shape != req.shape)
            throw Error(src_.path() + ": quant format " + f->name() + " reads fused weight '" + s.name + "' as " +
                        shape_str(p.shape) + ", expected " + shape_str(req.shape) + " (" + w.user + ")");
        check_consumed(*f, req, p);
        w.request = std::move(req);
        w.format = f;
        w.plan = std::move(p);
        w.device_bytes = w.plan.device_bytes;
        w.present = true;
        ++out_.fused;
        for (const auto& name : s.concat) ws[index[name]].absorbed = true;
    }
}

}  // namespace

int device_compute_capability(const Executor& ex) {
    const CudaHandles* h = ex.cuda();
    return h ? h->cc : 0;
}

std::string capability_problem(const QuantFormat& f, int cc) {
    const int need = f.min_compute_capability();
    if (cc <= 0 || need <= cc) return "";
    auto ver = [](int v) { return std::to_string(v / 10) + "." + std::to_string(v % 10); };
    return "needs compute capability " + ver(need) + " or newer, the device has " + ver(cc);
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

LoadPlan plan_weights(const ModelSource& src, const Registry& reg, const Executor& ex, const ModelDesc& desc,
                      const PlanOptions& opt) {
    LoadPlan out;
    out.quant = std::make_shared<const QuantConfig>(read_quant_config(src));
    out.weights = collect(src, desc);
    Planner planner(src, reg, ex, opt, out);
    for (auto& w : out.weights) planner.plan(w);
    planner.plan_fused(out.weights);
    for (const auto& w : out.weights) {
        if (!w.present || w.absorbed) continue;
        out.weight_bytes += w.device_bytes;
        out.workspace_bytes = std::max(out.workspace_bytes, w.plan.workspace_bytes);
    }
    return out;
}

}  // namespace imp
