// The upload half of the load plan: every planned weight through its format (matrices, expert stacks) or as fp32
// vectors, in declaration order, with load progress for big files.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "imp/dtype.h"
#include "imp/error.h"
#include "runtime/load_plan.h"
#include "runtime/load_progress.h"

namespace imp {

const Weight* Weights::matrix(const std::string& name) const {
    auto it = matrices.find(name);
    return it == matrices.end() ? nullptr : it->second.get();
}
const float* Weights::vector(const std::string& name) const {
    auto it = vectors.find(name);
    return it == vectors.end() ? nullptr : it->second;
}
const ExpertWeights* Weights::experts(const std::string& name) const {
    auto it = expert_stacks.find(name);
    return it == expert_stacks.end() ? nullptr : it->second.get();
}

void load_weights(const ModelSource& src, LoadPlan& lp, Executor& ex, Weights& out) {
    auto file_bytes = [](const PlannedWeight& w) {
        uint64_t b = 0;
        if (w.tensor) b += w.tensor->nbytes;
        for (const auto* t : w.plan.consumed) b += t->nbytes;
        return b;
    };
    uint64_t total = 0;
    for (const auto& w : lp.weights)
        if (w.present && !w.absorbed) total += file_bytes(w);
    LoadProgress progress(src.path(), src.file_bytes(), total);
    std::vector<float> host;
    for (auto& w : lp.weights) {
        const WeightSpec& s = w.spec;
        if (!w.present || w.absorbed) continue;
        const auto t0 = std::chrono::steady_clock::now();
        if (s.use == WeightSpec::Use::Matrix) {
            auto m = w.format->load(w.request, ex);
            if (!m || m->rows() != s.shape[0] || m->cols() != s.shape[1])
                throw Error(src.path() + ": quant format " + w.format->name() + " loaded '" + s.name + "' as " +
                            (m ? shape_str({m->rows(), m->cols()}) : std::string("nothing")) + ", planned " +
                            shape_str(s.shape));
            lp.workspace_bytes = std::max(lp.workspace_bytes, m->workspace_bytes(w.request.max_tokens));
            out.matrices[s.name] = std::move(m);
        } else if (s.use == WeightSpec::Use::Experts) {
            auto e = w.format->load_experts(w.request, ex);
            if (!e || e->n_expert() != s.shape[0] || e->rows() != s.shape[1] || e->cols() != s.shape[2])
                throw Error(src.path() + ": quant format " + w.format->name() + " loaded experts '" + s.name + "' as " +
                            (e ? shape_str({e->n_expert(), e->rows(), e->cols()}) : std::string("nothing")) +
                            ", planned " + shape_str(s.shape));
            lp.workspace_bytes =
                std::max(lp.workspace_bytes, e->workspace_bytes(w.request.max_tokens, w.request.top_k));
            out.expert_stacks[s.name] = std::move(e);
        } else {
            int64_t numel = 1;
            for (auto d : s.shape) numel *= d;
            host.resize(size_t(numel));
            if (!s.values.empty()) {
                std::copy(s.values.begin(), s.values.end(), host.begin());
            } else if (w.tensor->type == "F32") {
                std::memcpy(host.data(), w.tensor->data, size_t(numel) * 4);
            } else {
                const bool bf = w.tensor->type == "BF16";
                for (int64_t i = 0; i < numel; ++i) {
                    uint16_t h;
                    std::memcpy(&h, w.tensor->data + 2 * i, 2);
                    host[size_t(i)] = bf ? bf16_to_f32(h) : fp16_to_f32(h);
                }
            }
            auto* d = static_cast<float*>(ex.alloc(size_t(numel) * 4, s.name.c_str()));
            ex.upload(d, host.data(), size_t(numel) * 4);
            out.vectors[s.name] = d;
        }
        const std::string what = s.use == WeightSpec::Use::Matrix    ? w.format->name() + " matrices"
                                 : s.use == WeightSpec::Use::Experts ? w.format->name() + " experts"
                                                                     : std::string("vectors");
        add_load_phase(out.load_phases, what,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), file_bytes(w));
        progress.add(file_bytes(w));
    }
}

}  // namespace imp
