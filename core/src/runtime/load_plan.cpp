#include "runtime/load_plan.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "imp/dtype.h"
#include "imp/error.h"

namespace imp {

namespace {

constexpr uint64_t kProgressMinBytes = 100ull << 20;

// Loading progress on stderr for big files: one self-overwriting line on a terminal, a few lines otherwise.
class Progress {
public:
    Progress(const std::string& file, uint64_t file_bytes, uint64_t total)
        : file_(file), total_(total), on_(file_bytes > kProgressMinBytes && total > 0), tty_(isatty(2) != 0) {}
    void add(uint64_t bytes) {
        if (!on_) return;
        done_ += bytes;
        const int pct = int(done_ * 100 / total_);
        if (tty_) {
            if (pct != last_) std::fprintf(stderr, "\rloading %s: %3d%%", file_.c_str(), pct);
            if (done_ >= total_) std::fprintf(stderr, "\n");
        } else if (pct / 25 != last_ / 25 || last_ < 0) {
            std::fprintf(stderr, "loading %s: %d%%\n", file_.c_str(), pct / 25 * 25);
        }
        last_ = pct;
    }

private:
    std::string file_;
    uint64_t total_, done_ = 0;
    bool on_, tty_;
    int last_ = -1;
};

std::vector<WeightRequest_> collect_requests(const ModelSource& src, const ModelDesc& desc) {
    std::vector<WeightRequest_> reqs;
    std::map<std::string, size_t> index;
    auto add = [&](const WeightSpec& s, const std::string& user) {
        auto it = index.find(s.name);
        if (it == index.end()) {
            index[s.name] = reqs.size();
            reqs.push_back(WeightRequest_{s, user, nullptr, {}, nullptr, 0});
            return;
        }
        WeightRequest_& prev = reqs[it->second];
        if (prev.spec.shape != s.shape || prev.spec.use != s.use)
            throw Error(src.path() + ": weight '" + s.name + "' is requested as " + shape_str(prev.spec.shape) +
                        " by " + prev.user + " and as " + shape_str(s.shape) + " by " + user);
        prev.spec.optional = prev.spec.optional && s.optional;
    };
    WeightSpec emb{desc.tok_embd, {desc.n_vocab, desc.n_embd}, WeightSpec::Use::Matrix, false, {}};
    add(emb, "token embedding");
    for (size_t i = 0; i < desc.layers.size(); ++i) {
        const std::string user = desc.layers[i]->kind() + " (layer " + std::to_string(i) + ")";
        for (const auto& s : desc.layers[i]->weight_specs()) add(s, user);
    }
    add(WeightSpec{desc.output_norm, {desc.n_embd}, WeightSpec::Use::Vector, false, {}}, "output norm");
    add(WeightSpec{desc.output, {desc.n_vocab, desc.n_embd}, WeightSpec::Use::Matrix, false, {}}, "LM head");
    return reqs;
}

// Fused (row-concatenated) weights: built when every part is in the file as a 2-D tensor of one type and cols that
// nothing else requests under its own name, the rows add up, and a format takes the concatenation on this
// executor; the parts are then absorbed (not planned, not loaded). Otherwise the fused request is dropped.
void plan_fused(const ModelSource& src, const Registry& reg, const Executor& ex, LoadPlan& out,
                const std::map<std::string, const TensorInfo*>& by_name, bool enabled) {
    std::vector<WeightRequest_>& reqs = out.requests;
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < reqs.size(); ++i) index[reqs[i].spec.name] = i;
    std::map<std::string, int> wanted;  // how many fused weights name each part
    for (const auto& r : reqs)
        for (const auto& p : r.spec.concat) ++wanted[p];
    for (auto& r : reqs) {
        const WeightSpec& s = r.spec;
        if (s.concat.empty()) continue;
        if (s.use != WeightSpec::Use::Matrix || s.shape.size() != 2 || by_name.count(s.name))
            throw Error(src.path() + ": fused weight '" + s.name + "' of " + r.user +
                        " must be a 2-D matrix whose name is not a tensor of the file");
        if (!enabled) continue;
        WeightSource source;
        int64_t rows = 0;
        bool ok = true;
        for (const auto& p : s.concat) {
            const auto it = by_name.find(p);
            const auto ri = index.find(p);
            if (it == by_name.end() || ri == index.end() || wanted[p] != 1 || it->second->shape.size() != 2 ||
                it->second->shape[1] != s.shape[1] || it->second->type != by_name.at(s.concat[0])->type) {
                ok = false;
                break;
            }
            rows += it->second->shape[0];
            source.parts.push_back(it->second);
        }
        if (!ok || rows != s.shape[0]) continue;
        source.main = source.parts[0];
        const QuantFormat* f = reg.find_format(source);
        if (!f || !f->concat_rows(source, ex)) continue;
        r.source = source;
        r.tensor = source.main;
        r.format = f;
        r.device_bytes = f->device_bytes(source, ex);
        out.weight_bytes += r.device_bytes;
        ++out.fused;
        for (const auto& p : s.concat) reqs[index[p]].absorbed = true;
    }
}

void check_and_plan(const ModelSource& src, const Registry& reg, const Executor& ex, LoadPlan& out, bool fuse) {
    std::vector<WeightRequest_>& reqs = out.requests;
    // Auxiliary tensors of "X.weight" are the other "X.<suffix>" tensors (e.g. X.weight_scale), biases excepted.
    std::map<std::string, const TensorInfo*> by_name;
    for (const auto& t : src.tensors()) by_name[t.name] = &t;
    std::string formats;
    for (const auto* f : reg.formats()) {
        std::string types;
        for (const auto& t : f->types()) types += (types.empty() ? "" : " ") + t;
        formats += (formats.empty() ? "" : ", ") + f->name() + " (" + types + ")";
    }
    plan_fused(src, reg, ex, out, by_name, fuse);
    for (auto& r : reqs) {
        const WeightSpec& s = r.spec;
        if (r.absorbed || !s.concat.empty()) continue;  // planned (or dropped) by plan_fused
        int64_t numel = 1;
        for (auto d : s.shape) numel *= d;
        if (!s.values.empty()) {
            if (s.use != WeightSpec::Use::Vector || int64_t(s.values.size()) != numel)
                throw Error(src.path() + ": computed weight '" + s.name + "' of " + r.user + " has " +
                            std::to_string(s.values.size()) + " values for shape " + shape_str(s.shape));
            r.device_bytes = round64(uint64_t(numel) * 4);
            out.weight_bytes += r.device_bytes;
            continue;
        }
        r.tensor = src.find(s.name);
        if (!r.tensor) {
            if (s.optional) continue;
            throw Error(src.path() + ": tensor '" + s.name + "' needed by " + r.user + " is missing");
        }
        if (r.tensor->shape != s.shape)
            throw Error(src.path() + ": tensor '" + s.name + "' has shape " + shape_str(r.tensor->shape) +
                        ", expected " + shape_str(s.shape) + " (" + r.user + ")");
        if (s.use == WeightSpec::Use::Vector) {
            const std::string& ty = r.tensor->type;
            const uint64_t es = ty == "F32" ? 4 : (ty == "F16" || ty == "BF16") ? 2 : 0;
            if (es == 0)
                throw Error(src.path() + ": tensor '" + s.name + "' has type " + ty +
                            "; vector weights must be F32, F16 or BF16");
            if (r.tensor->nbytes != uint64_t(numel) * es)
                throw Error(src.path() + ": tensor '" + s.name + "' holds " + std::to_string(r.tensor->nbytes) +
                            " bytes, expected " + std::to_string(uint64_t(numel) * es) + " for " + ty +
                            shape_str(s.shape));
            r.device_bytes = round64(uint64_t(numel) * 4);
            out.weight_bytes += r.device_bytes;
            continue;
        }
        r.source.main = r.tensor;
        const std::string suffix = ".weight";
        if (s.name.size() > suffix.size() && s.name.compare(s.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
            const std::string base = s.name.substr(0, s.name.size() - suffix.size() + 1);  // "X."
            for (auto it = by_name.lower_bound(base); it != by_name.end() && it->first.compare(0, base.size(), base) == 0;
                 ++it) {
                const std::string sub = it->first.substr(base.size());
                if (it->second != r.tensor && sub != "bias") r.source.aux[sub] = it->second;
            }
        }
        r.format = reg.find_format(r.source);
        if (!r.format)
            throw Error(src.path() + ": no loaded quant format handles tensor '" + s.name + "' of type " +
                        r.tensor->type + " (loaded formats: " + (formats.empty() ? "none" : formats) + ")");
        r.device_bytes = r.format->device_bytes(r.source, ex);
        out.weight_bytes += r.device_bytes;
    }
}

}  // namespace

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

std::string human_bytes(uint64_t b) {
    char buf[32];
    if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1ull << 30));
    else std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1ull << 20));
    return buf;
}

const Weight* Weights::matrix(const std::string& name) const {
    auto it = matrices.find(name);
    return it == matrices.end() ? nullptr : it->second.get();
}
const float* Weights::vector(const std::string& name) const {
    auto it = vectors.find(name);
    return it == vectors.end() ? nullptr : it->second;
}

LoadPlan plan_weights(const ModelSource& src, const Registry& reg, const Executor& ex, const ModelDesc& desc, bool fuse) {
    LoadPlan out;
    out.requests = collect_requests(src, desc);
    check_and_plan(src, reg, ex, out, fuse);
    return out;
}

void load_weights(const ModelSource& src, LoadPlan& lp, Executor& ex, Weights& weights) {
    std::vector<WeightRequest_>& reqs = lp.requests;
    uint64_t total = 0;
    for (const auto& r : reqs) {
        if (!r.source.parts.empty())
            for (const auto* p : r.source.parts) total += p->nbytes;
        else if (r.tensor && !r.absorbed)
            total += r.tensor->nbytes;
    }
    Progress progress(src.path(), src.file_bytes(), total);
    std::vector<float> host;
    for (auto& r : reqs) {
        const WeightSpec& s = r.spec;
        if (r.absorbed || (!r.tensor && s.values.empty())) continue;  // in a fused weight, or absent optional
        if (s.use == WeightSpec::Use::Matrix) {
            auto w = r.format->load(r.source, ex);
            if (!w) throw Error(src.path() + ": quant format " + r.format->name() + " failed to load '" + s.name + "'");
            weights.matrices[s.name] = std::move(w);
        } else {
            int64_t numel = 1;
            for (auto d : s.shape) numel *= d;
            host.resize(size_t(numel));
            if (!s.values.empty()) {
                std::copy(s.values.begin(), s.values.end(), host.begin());
            } else if (r.tensor->type == "F32") {
                std::memcpy(host.data(), r.tensor->data, size_t(numel) * 4);
            } else {
                const bool bf = r.tensor->type == "BF16";
                for (int64_t i = 0; i < numel; ++i) {
                    uint16_t h;
                    std::memcpy(&h, r.tensor->data + 2 * i, 2);
                    host[size_t(i)] = bf ? bf16_to_f32(h) : fp16_to_f32(h);
                }
            }
            auto* d = static_cast<float*>(ex.alloc(size_t(numel) * 4, s.name.c_str()));
            ex.upload(d, host.data(), size_t(numel) * 4);
            weights.vectors[s.name] = d;
        }
        if (!r.source.parts.empty())
            for (const auto* p : r.source.parts) progress.add(p->nbytes);
        else if (r.tensor)
            progress.add(r.tensor->nbytes);
    }
}


}  // namespace imp
