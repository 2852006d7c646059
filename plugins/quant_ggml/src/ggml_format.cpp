#include "ggml_format.h"

#include <algorithm>
#include <cstring>

#include "cuda_experts.h"
#include "cuda_weight.h"
#include "experts_check.h"
#include "experts_cpu.h"
#include "ggml_cpu_weight.h"
#include "ggml_settings.h"
#include "ggml_types.h"
#include "imp/error.h"
#include "imp/executor.h"
#include "kernels.h"

namespace imp::ggml {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// One file tensor as ggml rows: the last dim is cols, every other dim counts rows (a 3-D [n_expert, rows, cols]
// stack is n_expert * rows rows). Validates the shape and the byte size.
struct Rows {
    const TensorInfo* t;
    int64_t rows, cols;
    uint64_t row_bytes;
};

Rows rows_of(const TensorInfo& ti, const TypeInfo& t) {
    if (ti.shape.empty()) throw Error("quant_ggml: tensor '" + ti.name + "' is a scalar, not a matrix");
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < ti.shape.size(); ++i) {
        if (ti.shape[i] <= 0 || __builtin_mul_overflow(rows, ti.shape[i], &rows))
            throw Error("quant_ggml: tensor '" + ti.name + "' has bad shape " + shape_str(ti.shape));
    }
    const int64_t cols = ti.shape.back();
    if (cols <= 0) throw Error("quant_ggml: tensor '" + ti.name + "' has bad shape " + shape_str(ti.shape));
    const uint64_t rb = row_bytes(t, cols, "tensor '" + ti.name + "' (" + t.name + " " + shape_str(ti.shape) + ")");
    const uint64_t total = checked_mul(uint64_t(rows), rb, ti.name.c_str());
    if (ti.nbytes != total)
        throw Error("quant_ggml: tensor '" + ti.name + "' (" + t.name + " " + shape_str(ti.shape) + ") has " +
                    std::to_string(ti.nbytes) + " bytes, expected " + std::to_string(total));
    return {&ti, rows, cols, rb};
}

// A source as ggml reads it: its tensors in row order and the logical shape, or why ggml does not take it.
struct Layout {
    std::string refusal;
    const TypeInfo* type = nullptr;
    std::vector<Rows> pieces;
    std::vector<int64_t> shape;
};

Layout layout_of(const WeightSource& src);
std::string source_name(const WeightSource& src);

// Expert stacks concatenated along each expert's rows (fused gate|up experts): parts that are each an expert list
// (per-expert tensors) of one type, expert count and width -> [n_expert, sum of rows, cols].
Layout stacked_expert_lists(const WeightSource& src) {
    Layout l;
    int64_t rows = 0;
    for (const auto& p : src.parts) {
        if (p.experts.empty() || !p.parts.empty()) {
            l.refusal = "a row concatenation mixes expert lists with other sources";
            return l;
        }
        Layout pl = layout_of(p);
        if (!pl.refusal.empty()) return pl;
        if (l.type && (pl.type != l.type || pl.shape[0] != l.shape[0] || pl.shape[2] != l.shape[2])) {
            l.refusal = "expert lists " + source_name(src.parts[0]) + " " + shape_str(l.shape) + " and " +
                        source_name(p) + " " + shape_str(pl.shape) + " do not stack";
            return l;
        }
        if (!l.type) l.shape = pl.shape;
        l.type = pl.type;
        rows += pl.shape[1];
        l.pieces.insert(l.pieces.end(), pl.pieces.begin(), pl.pieces.end());
    }
    l.shape[1] = rows;
    return l;
}

// Part p's rows of expert e in a stacked source (a 3-D tensor or an expert list).
const uint8_t* part_expert_data(const WeightSource& p, int64_t e, uint64_t row_bytes) {
    if (!p.experts.empty()) return p.experts[size_t(e)].main->data;
    return p.main->data + uint64_t(e) * uint64_t(p.main->shape[1]) * row_bytes;
}
int64_t part_expert_rows(const WeightSource& p) {
    return !p.experts.empty() ? p.experts[0].main->shape[0] : p.main->shape[1];
}

Layout layout_of(const WeightSource& src) {
    if (!src.parts.empty() && !src.parts[0].experts.empty()) return stacked_expert_lists(src);
    Layout l;
    std::vector<const WeightSource*> units;
    for (const auto& p : src.parts) units.push_back(&p);
    for (const auto& e : src.experts) units.push_back(&e);
    if (units.empty()) units.push_back(&src);
    for (const WeightSource* u : units) {
        if (!u->parts.empty() || !u->experts.empty()) {
            l.refusal = "nested row concatenations or expert lists are not supported";
            return l;
        }
        if (!u->main) {
            l.refusal = u->aux.empty() ? "no tensor"
                                       : "no tensor of that name (only '" + u->aux.begin()->second->name + "'" +
                                             (u->aux.size() > 1 ? " and others" : "") + " under it)";
            return l;
        }
        const TypeInfo* t = find_type(u->main->type);
        if (!t) {
            l.refusal = "type " + u->main->type + " is not a ggml type";
            return l;
        }
        for (const auto& [key, aux] : u->aux) {
            if (key.rfind("weight_", 0) == 0) {
                l.refusal = "'" + aux->name + "' is a scale tensor, which ggml types do not have";
                return l;
            }
        }
        if (l.type && t != l.type) {
            l.refusal = "mixes types " + std::string(l.type->name) + " and " + t->name;
            return l;
        }
        l.type = t;
        l.pieces.push_back(rows_of(*u->main, *t));
    }
    if (src.parts.empty() && src.experts.empty()) {
        l.shape = src.main->shape;
        return l;
    }
    const std::vector<int64_t>& first = l.pieces[0].t->shape;
    int64_t rows = 0;
    if (!src.parts.empty() && first.size() == 3) {
        // expert stacks [n_expert, rows_i, cols] concatenated along the rows of each expert (fused gate|up experts)
        for (const auto& p : l.pieces) {
            const auto& s = p.t->shape;
            if (s.size() != 3 || s[0] != first[0] || s[2] != first[2]) {
                l.refusal = "'" + p.t->name + "' " + shape_str(s) + " does not stack with '" + l.pieces[0].t->name +
                            "' " + shape_str(first);
                return l;
            }
            rows += s[1];
        }
        l.shape = {first[0], rows, first[2]};
        return l;
    }
    for (const auto& p : l.pieces) {
        const auto& s = p.t->shape;
        const bool ok = s.size() == 2 && (src.experts.empty() ? s[1] == first[1] : s == first);
        if (!ok) {
            l.refusal = "'" + p.t->name + "' " + shape_str(s) + " does not stack with '" + l.pieces[0].t->name + "' " +
                        shape_str(first);
            return l;
        }
        rows += s[0];
    }
    if (!src.parts.empty()) l.shape = {rows, first[1]};
    else l.shape = {int64_t(l.pieces.size()), first[0], first[1]};
    return l;
}

Layout checked_layout(const WeightSource& src, const std::string& what) {
    Layout l = layout_of(src);
    if (!l.refusal.empty()) throw Error("quant_ggml: cannot read " + what + ": " + l.refusal);
    return l;
}

// For messages and device tags: the main tensor, or the parts joined by '+'.
std::string source_name(const WeightSource& src) {
    if (src.parts.empty()) return src.main ? src.main->name : src.describe();
    std::string n;
    for (const auto& p : src.parts) n += (n.empty() ? "" : "+") + source_name(p);
    return n;
}

}  // namespace

std::vector<std::string> GgmlFormat::types() const {
    std::vector<std::string> v;
    for (int i = 0; i < kTypeCount; ++i) v.push_back(type_info(Type(i)).name);
    return v;
}

WeightPlan GgmlFormat::plan(const WeightRequest& req, const Executor& ex) const {
    Layout l = layout_of(req.source);
    if (!l.refusal.empty()) return WeightPlan::refuse(l.refusal);
    const bool cuda = ex.kind() == DeviceKind::CUDA;
    if (!cuda && ex.kind() != DeviceKind::CPU) return WeightPlan::refuse("executor " + ex.name() + " not supported");
    const Type t = l.type->type;
    WeightPlan p;
    p.accepted = true;
    p.type = l.type->name;
    p.shape = l.shape;
    for (const auto& piece : l.pieces) p.consumed.push_back(piece.t);
    if (req.role == WeightRole::Experts) {
        if (l.shape.size() != 3) return p;  // not a stack: the engine reports the shape
        if (cuda && !cuda::experts_supported(t))
            return WeightPlan::refuse("type " + p.type + " has no CUDA expert kernels");
        p.device_bytes = cuda ? cuda::experts_device_bytes(req.name, t, l.shape[0], l.shape[1], l.shape[2])
                              : cpu_experts_bytes(req.name, t, l.shape[0], l.shape[1], l.shape[2]);
        return p;
    }
    if (l.shape.size() != 2) return p;  // not a matrix: the engine reports the shape
    if (cuda && !cuda::cuda_supports(t)) return WeightPlan::refuse("type " + p.type + " has no CUDA kernels");
    if (cuda && l.type->block > 1 && l.pieces.size() > 1) {
        for (size_t i = 0; i + 1 < l.pieces.size(); ++i)
            if (l.pieces[i].rows % 16 != 0)
                return WeightPlan::refuse("fused part '" + l.pieces[i].t->name + "' has " +
                                          std::to_string(l.pieces[i].rows) +
                                          " rows, not whole 16-row groups of the CUDA tiled layout");
    }
    p.device_bytes = cuda ? cuda::device_bytes(source_name(req.source), t, l.shape[0], l.shape[1])
                          : uint64_t(l.shape[0]) * l.pieces[0].row_bytes;
    // Workspace: the CUDA weights size theirs per instance (Weight::workspace_bytes), which the engine asks once
    // they are loaded; the CPU kernels need none.
    return p;
}

namespace {
cuda::CudaOptions cuda_options(const GgmlSettings& gs) {
    cuda::CudaOptions o;
    o.dp4a = gs.gemv_dp4a;
    o.q8_dp4a = gs.gemv_q8_dp4a;
    o.prefetch = gs.gemv_prefetch;
    o.plain_pdl = gs.gemv_plain_pdl;
    o.l2_prefetch = int(gs.gemv_l2_prefetch);
    o.experts_swiglu = gs.experts_swiglu;
    o.experts_fused_sum = gs.experts_fused_sum;
    o.experts_gemm_tokens = gs.experts_gemm_tokens;
    o.experts_gemm_tiles = gs.experts_gemm_tiles;
    o.experts_gemm_ctas = gs.experts_gemm_ctas;
    o.experts_gemm_bf16x2 = gs.experts_gemm_bf16x2;
    o.experts_kw = gs.experts_gemv_warps;
    o.fuse_norm = gs.fuse_norm;
    o.fuse_swiglu = gs.fuse_swiglu;
    o.fuse_gemm_input = gs.fuse_gemm_input;
    o.gemm_tune = gs.gemm_tune;
    return o;
}
}  // namespace

std::unique_ptr<Weight> GgmlFormat::load(const WeightRequest& req, Executor& ex) const {
    const Layout l = checked_layout(req.source, "'" + req.name + "'");
    if (l.shape.size() != 2)
        throw Error("quant_ggml: '" + req.name + "' is " + shape_str(l.shape) + ", not a [rows, cols] matrix");
    const std::string name = source_name(req.source);
    const uint64_t rb = l.pieces[0].row_bytes;
    std::vector<cuda::RowPart> parts;
    for (const auto& p : l.pieces) parts.push_back({p.t->data, p.rows});
    const GgmlSettings gs = ggml_settings(req.settings);
    if (ex.kind() == DeviceKind::CUDA) {
        cuda::CudaOptions o = cuda_options(gs);
        o.tune_scratch = req.role != WeightRole::LmHead;  // the LM head never accumulates
        return cuda::load_weight(name, l.type->type, l.shape[1], parts, rb, ex, o);
    }
    require_cpu(ex, name);
    const uint64_t n = uint64_t(l.shape[0]) * rb;
    auto* dst = static_cast<uint8_t*>(ex.alloc(n, name.c_str()));
    uint64_t off = 0;
    for (const auto& part : parts) {
        ex.upload(dst + off, part.data, uint64_t(part.rows) * rb);
        off += uint64_t(part.rows) * rb;
    }
    return make_cpu_weight(name, *l.type, l.shape[0], l.shape[1], rb, dst, kernels_named(gs.cpu_kernels));
}

std::unique_ptr<ExpertWeights> GgmlFormat::load_experts(const WeightRequest& req, Executor& ex) const {
    const Layout l = checked_layout(req.source, "experts '" + req.name + "'");
    if (l.shape.size() != 3)
        throw Error("quant_ggml: experts '" + req.name + "' is " + shape_str(l.shape) + ", not [n_expert, rows, cols]");
    const int64_t n_expert = l.shape[0], rows = l.shape[1], cols = l.shape[2];
    const GgmlSettings gs = ggml_settings(req.settings);
    if (!req.source.parts.empty() && ex.kind() == DeviceKind::CUDA) {
        // A fused stack (e.g. gate|up): expert e = the part rows of e, in order; joined per expert while repacked.
        const uint64_t rb = l.pieces[0].row_bytes;
        std::vector<std::vector<cuda::ExpertRows>> parts(static_cast<size_t>(n_expert));
        for (int64_t e = 0; e < n_expert; ++e)
            for (const auto& p : req.source.parts)
                parts[size_t(e)].push_back({part_expert_data(p, e, rb), part_expert_rows(p)});
        return cuda::load_experts(req.name, l.type->type, n_expert, rows, cols, parts, ex, cuda_options(gs));
    }
    std::vector<const uint8_t*> data;
    std::vector<uint8_t> joined;  // expert stacks concatenated per expert (parts): expert e = part rows of e, in order
    if (!req.source.parts.empty()) {
        const uint64_t rb = l.pieces[0].row_bytes;
        joined.resize(uint64_t(n_expert) * uint64_t(rows) * rb);
        for (int64_t e = 0; e < n_expert; ++e) {
            uint8_t* dst = joined.data() + uint64_t(e) * uint64_t(rows) * rb;
            for (const auto& p : req.source.parts) {
                const uint64_t part_rows = uint64_t(part_expert_rows(p));
                std::memcpy(dst, part_expert_data(p, e, rb), part_rows * rb);
                dst += part_rows * rb;
            }
            data.push_back(joined.data() + uint64_t(e) * uint64_t(rows) * rb);
        }
    } else if (req.source.experts.empty()) {
        data = expert_pointers(l.pieces[0].t->data, n_expert, rows, l.pieces[0].row_bytes);
    } else {
        for (const auto& p : l.pieces) data.push_back(p.t->data);
    }
    if (ex.kind() == DeviceKind::CUDA)
        return cuda::load_experts(req.name, l.type->type, n_expert, rows, cols, data, ex, cuda_options(gs));
    return make_cpu_experts(req.name, l.type->type, n_expert, rows, cols, data, ex, kernels_named(gs.cpu_kernels));
}

void GgmlFormat::dequantize(const WeightSource& src, int64_t row0, int64_t nrows, float* out) const {
    const Layout l = checked_layout(src, src.describe());
    const int64_t cols = l.pieces[0].cols;
    int64_t total = 0;
    for (const auto& p : l.pieces) total += p.rows;
    if (row0 < 0 || nrows < 0 || row0 > total - nrows)
        throw Error("quant_ggml: dequantize " + src.describe() + ": rows [" + std::to_string(row0) + ", " +
                    std::to_string(row0 + nrows) + ") outside its " + std::to_string(total) + " rows");
    const auto dq = kernels_best().dequant[int(l.type->type)];
    const int64_t nb = cols / l.type->block;
    if (l.shape.size() == 3 && !src.parts.empty()) {  // stacked parts: row e * rows + r is part row r of expert e
        const int64_t rows = l.shape[1];
        for (int64_t i = 0; i < nrows; ++i) {
            const int64_t e = (row0 + i) / rows;
            int64_t r = (row0 + i) % rows;
            size_t k = 0;
            while (r >= part_expert_rows(src.parts[k])) r -= part_expert_rows(src.parts[k++]);
            const uint64_t rb = l.pieces[0].row_bytes;
            dq(part_expert_data(src.parts[k], e, rb) + uint64_t(r) * rb, nb, out + i * cols);
        }
        return;
    }
    size_t piece = 0;
    int64_t base = 0;  // first row of pieces[piece]
    for (int64_t i = 0; i < nrows; ++i) {
        const int64_t r = row0 + i;
        while (r >= base + l.pieces[piece].rows) base += l.pieces[piece++].rows;
        const Rows& p = l.pieces[piece];
        dq(p.t->data + uint64_t(r - base) * p.row_bytes, nb, out + i * cols);
    }
}

void GgmlFormat::dequantize(const std::string& type, const uint8_t* data, int64_t n, float* out) const {
    const TypeInfo* t = find_type(type);
    if (!t) throw Error("quant_ggml: cannot dequantize type " + type + ", not one of " + type_list());
    if (n < 0 || n % t->block != 0)
        throw Error("quant_ggml: dequantize " + type + ": " + std::to_string(n) +
                    " elements is not a whole number of " + std::to_string(t->block) + "-element blocks");
    kernels_best().dequant[int(t->type)](data, n / t->block, out);
}

}  // namespace imp::ggml
