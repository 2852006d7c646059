// quant_fp8: reading a weight's file tensors as FP8 E4M3 weights (see fp8_layout.h).
#include "fp8_layout.h"

#include <algorithm>
#include <cmath>

#include "format_common.h"
#include "hf_quant_util.h"
#include "imp/error.h"

namespace imp::fp8 {
namespace {

using quant_hf::shape_str;

const char* kPlugin = "quant_fp8";

[[noreturn]] void fail(const std::string& what) { throw Error(std::string(kPlugin) + ": " + what); }

const quant_hf::FormatRules kRules{kPlugin, "is FP8", "FP8", {"FP8", "FP8_PER_CHANNEL_PER_TOKEN"},
                                  {"float-quantized", "naive-quantized"},
                                  "(it reads FP8 and FP8_PER_CHANNEL_PER_TOKEN)"};

void check_config(const QuantConfig* q, const std::string& tensor, const std::string& module) {
    if (!q || q->empty()) return;
    if (q->method == "fp8" && q->algo == "FP8_BLOCK")
        fail("'" + tensor + "': key 'quant_method' is 'fp8' with 'weight_block_size' (block-wise FP8 with " +
             "weight_scale_inv), which quant_fp8 does not read (" + quant_hf::config_files(*q) + ")");
    quant_hf::check_module(kRules, *q, quant_hf::module_algo(*q, module), tensor, module);
}

void check_missing(const QuantConfig* q, const std::string& module, const std::string& have) {
    quant_hf::check_missing(kRules, q, module, have);
}

Piece piece_of(const WeightSource& u, const QuantConfig* q, std::string& refusal) {
    Piece p;
    if (!u.main || u.main->type != "F8_E4M3") {
        if (u.main) check_missing(q, module_of(u.main->name), "'" + u.main->name + "' is " + u.main->type);
        refusal = u.main ? "type " + u.main->type + " is not F8_E4M3" : "no weight tensor";
        return p;
    }
    p.q = u.main;
    const std::string& name = p.q->name;
    const std::string module = module_of(name);
    if (const TensorInfo* inv = u.find("weight_scale_inv"))
        fail("'" + inv->name + "': block-wise FP8 (weight_scale_inv) is not supported");
    const TensorInfo* s = u.find("weight_scale");
    if (!s) fail("'" + name + "' is F8_E4M3 but its scale '" + module + ".weight_scale' is missing");
    check_config(q, name, module);
    const auto& sh = p.q->shape;
    if (sh.size() != 2 && sh.size() != 3) fail("'" + name + "' " + shape_str(sh) + " is not [(n,) rows, cols]");
    p.n = sh.size() == 3 ? sh[0] : 1;
    p.rows = sh[sh.size() - 2];
    p.cols = sh.back();
    if (p.n <= 0 || p.rows <= 0 || p.cols <= 0 || p.q->nbytes != uint64_t(p.n * p.rows * p.cols))
        fail("'" + name + "' " + shape_str(sh) + " holds " + std::to_string(p.q->nbytes) + " bytes");
    // The scale's shape, not only its count, says what it is: per tensor [] / [1] (or [n] / [n, 1] for n experts),
    // per channel [rows] / [rows, 1] (or [n, rows] / [n, rows, 1]). A block-wise scale [rows/b, cols/b] can hold
    // the same count and is refused, also where it has one row of blocks ([1, cols/b] with cols/b == rows: only
    // trailing 1s are dropped, so it does not pass for [rows]).
    std::vector<int64_t> ss = s->shape;  // without its trailing 1s and without the experts' leading n
    while (!ss.empty() && ss.back() == 1) ss.pop_back();
    if (sh.size() == 3 && !ss.empty() && ss.front() == p.n) ss.erase(ss.begin());
    p.scales = quant_hf::read_floats(*s, kPlugin);
    const int64_t ns = int64_t(p.scales.size());
    if (ss.size() == 1 && ss.front() == p.rows && ns == p.n * p.rows) p.per_channel = true;
    else if (!ss.empty() || ns != p.n)
        fail("'" + s->name + "' " + shape_str(s->shape) + " has " + std::to_string(ns) + " values; '" + name + "' " +
             shape_str(sh) + " needs " + std::to_string(p.n) + " (per tensor) or " + std::to_string(p.n * p.rows) +
             " (per channel) (block-wise FP8 scales are not supported)");
    for (float v : p.scales)
        if (!std::isfinite(v) || v < 0) fail("'" + s->name + "' holds the unusable scale " + std::to_string(v));
    p.tensors = {p.q, s};
    if (const TensorInfo* in = u.find("input_scale")) {
        const std::vector<float> v = quant_hf::read_floats(*in, kPlugin);
        p.input_scale = v.empty() ? 0.f : *std::max_element(v.begin(), v.end());
        p.tensors.push_back(in);
    }
    return p;
}

}  // namespace

bool Layout::per_row() const {
    if (fused_experts) return true;
    for (const auto& p : pieces)
        if (p.per_channel || (!experts() && p.scales[0] != pieces[0].scales[0])) return true;
    return false;
}

std::vector<float> Layout::canonical_scales() const {
    std::vector<float> v;
    const bool rows = per_row();
    for (const auto& p : pieces)
        for (int64_t e = 0; e < p.n; ++e) {
            if (!rows) {
                v.push_back(p.scales[size_t(e)]);
                continue;
            }
            for (int64_t r = 0; r < p.rows; ++r) v.push_back(p.scale(e, r));
        }
    if (!rows && !experts()) v.resize(1);  // parts with one equal scale
    return v;
}

float Layout::input_scale() const {
    float m = 0.f;
    for (const auto& p : pieces) m = std::max(m, p.input_scale);
    return m;
}

namespace {

// Fused experts (gate|up of every expert): parts that are each a per-expert list of the same experts. The pieces go
// expert by expert, each expert's parts in order; scales become per row.
Layout fused_experts(const WeightSource& src, const QuantConfig* config) {
    Layout l;
    std::vector<Layout> parts;
    for (const auto& part : src.parts) {
        if (part.experts.empty() || !part.parts.empty()) {
            l.refusal = "a fused expert weight needs every part as per-expert tensors";
            return l;
        }
        parts.push_back(layout_of(part, config));
        if (!parts.back().refusal.empty()) return parts.back();
        if (parts.back().shape[0] != parts[0].shape[0] || parts.back().shape[2] != parts[0].shape[2]) {
            l.refusal = "fused expert parts " + src.parts[0].describe() + " and " + part.describe() + " do not stack";
            return l;
        }
    }
    int64_t rows = 0;
    for (const auto& p : parts) rows += p.shape[1];
    for (int64_t e = 0; e < parts[0].shape[0]; ++e)
        for (const auto& p : parts) l.pieces.push_back(p.pieces[size_t(e)]);
    l.shape = {parts[0].shape[0], rows, parts[0].shape[2]};
    l.fused_experts = true;
    return l;
}

}  // namespace

Layout layout_of(const WeightSource& src, const QuantConfig* config) {
    if (!src.parts.empty() && !src.parts[0].experts.empty()) return fused_experts(src, config);
    Layout l;
    const std::vector<const WeightSource*> units = quant_hf::source_units(src, l.refusal);
    if (!l.refusal.empty()) return l;
    for (const WeightSource* u : units) {
        Piece p = piece_of(*u, config, l.refusal);
        if (!l.refusal.empty()) return l;
        l.pieces.push_back(std::move(p));
    }
    const Piece& f = l.pieces[0];
    if (src.parts.empty() && src.experts.empty()) {
        l.shape = f.q->shape;
        return l;
    }
    int64_t rows = 0;
    for (const auto& p : l.pieces) {
        if (p.n != 1 || p.cols != f.cols || (!src.experts.empty() && p.rows != f.rows)) {
            l.refusal = "'" + p.q->name + "' " + shape_str(p.q->shape) + " does not stack with '" + f.q->name + "' " +
                        shape_str(f.q->shape);
            return l;
        }
        rows += p.rows;
    }
    if (!src.parts.empty()) l.shape = {rows, f.cols};
    else l.shape = {int64_t(l.pieces.size()), f.rows, f.cols};
    return l;
}

}  // namespace imp::fp8
