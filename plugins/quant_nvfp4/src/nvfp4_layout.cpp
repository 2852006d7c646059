// quant_nvfp4: reading a weight's file tensors as NVFP4 (see nvfp4_layout.h).
#include "nvfp4_layout.h"

#include <cmath>

#include "format_common.h"
#include "hf_quant_util.h"
#include "imp/error.h"

namespace imp::nvfp4 {
namespace {

using quant_hf::shape_str;

const char* kPlugin = "quant_nvfp4";

std::string strip(const std::string& name, const std::string& suffix) {
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return name.substr(0, name.size() - suffix.size());
    return name;
}

[[noreturn]] void fail(const std::string& what) { throw Error(std::string(kPlugin) + ": " + what); }

const quant_hf::FormatRules kRules{kPlugin, "holds NVFP4 codes", "NVFP4", {"NVFP4", "W4A16_NVFP4"},
                                  {"nvfp4-pack-quantized"}, "(it reads NVFP4 and W4A16_NVFP4, weight-only)"};

// The config's word on a module whose tensors are NVFP4: fine, or an Error naming the key.
void check_config(const QuantConfig* q, const std::string& tensor, const std::string& module) {
    if (!q || q->empty()) return;  // no config: the tensors speak for themselves
    const quant_hf::ModuleAlgo m = quant_hf::module_algo(*q, module);
    if (!m.excluded && m.group_size != 0 && m.group_size != 16)
        fail("'" + tensor + "': key '" + (m.listed ? m.key + ".group_size" : std::string("group_size")) + "' is " +
             std::to_string(m.group_size) + "; NVFP4 blocks are 16 elements (" + quant_hf::config_files(*q) + ")");
    quant_hf::check_module(kRules, *q, m, tensor, module);
}

// Where the config puts a module whose tensors are not NVFP4 under NVFP4: an Error (a layer in the map whose
// NVFP4 tensors are missing).
void check_missing(const QuantConfig* q, const std::string& module, const std::string& have) {
    quant_hf::check_missing(kRules, q, module, have);
}

Piece piece_of(const WeightSource& u, const QuantConfig* q, std::string& refusal) {
    Piece p;
    const TensorInfo* packed = u.find("weight_packed");
    if (packed && packed->type != "U8") packed = nullptr;  // int4 pack-quantized (I32 words): not NVFP4
    const bool modelopt = u.main && u.main->type == "U8";
    const std::string base = u.main ? module_of(u.main->name) : packed ? strip(packed->name, ".weight_packed") : "";
    const TensorInfo* scales = u.find("weight_scale");
    if ((!modelopt && !packed) || !scales || scales->type != "F8_E4M3") {
        const std::string have = u.main ? "'" + u.main->name + "' is " + u.main->type + " " + shape_str(u.main->shape)
                                        : "no '" + base + ".weight' or '.weight_packed'";
        if (!base.empty()) check_missing(q, base, have + (scales ? "" : ", no weight_scale"));
        refusal = u.main ? "type " + u.main->type + " without an F8_E4M3 weight_scale is not NVFP4"
                         : "no U8 weight or weight_packed tensor with an F8_E4M3 weight_scale";
        return p;
    }
    p.codes = modelopt ? u.main : packed;
    p.scales = scales;
    const char* gkey = modelopt ? "weight_scale_2" : "weight_global_scale";
    const TensorInfo* g = u.find(gkey);
    const std::string& name = p.codes->name;
    if (!g) fail("'" + name + "': the per-tensor scale '" + base + "." + gkey + "' is missing");
    if (const TensorInfo* pre = u.find("pre_quant_scale"))
        fail("'" + pre->name + "': NVFP4_AWQ activation pre-scales are not supported");
    check_config(q, name, base);

    const auto& cs = p.codes->shape;
    const auto& ss = p.scales->shape;
    if ((cs.size() != 2 && cs.size() != 3) || ss.size() != cs.size())
        fail("'" + name + "' " + shape_str(cs) + " and '" + p.scales->name + "' " + shape_str(ss) +
             " are not [(n,) rows, cols/2] and [(n,) rows, cols/16]");
    p.n = cs.size() == 3 ? cs[0] : 1;
    p.rows = cs[cs.size() - 2];
    p.cols = cs.back() * 2;
    bool ok = p.n > 0 && p.rows > 0 && p.cols > 0 && p.cols % 16 == 0 && ss.back() == p.cols / 16 &&
              ss[ss.size() - 2] == p.rows && (cs.size() == 2 || ss[0] == p.n);
    if (!ok)
        fail("'" + name + "' " + shape_str(cs) + " (" + std::to_string(p.cols) + " columns) does not match '" +
             p.scales->name + "' " + shape_str(ss) + " (one scale per 16 columns)");
    const uint64_t nb = uint64_t(p.n) * uint64_t(p.rows);
    if (p.codes->nbytes != nb * uint64_t(p.cols / 2) || p.scales->nbytes != nb * uint64_t(p.cols / 16))
        fail("'" + name + "' or '" + p.scales->name + "' holds the wrong number of bytes for " + shape_str(cs));
    const int64_t ng = g->numel();
    if (ng != 1 && ng != p.n)
        fail("'" + g->name + "' " + shape_str(g->shape) + " has " + std::to_string(ng) + " values for " +
             std::to_string(p.n) + " matrices");
    std::vector<float> gv = quant_hf::read_f32(*g, kPlugin);
    for (int64_t e = 0; e < p.n; ++e) {
        const float v = gv[size_t(ng == 1 ? 0 : e)];
        if (!std::isfinite(v) || v < 0 || (!modelopt && v == 0))
            fail("'" + g->name + "' value " + std::to_string(v) + " is not a usable scale");
        p.globals.push_back(modelopt ? v : 1.0f / v);  // compressed-tensors: the reciprocal
        if (!modelopt) p.ct_global_scales.push_back(v);
    }
    p.tensors = {p.codes, p.scales, g};
    for (const char* k : {"input_scale", "input_global_scale"})  // activation scales: weight-only, ignored
        if (const TensorInfo* t = u.find(k)) p.tensors.push_back(t);
    return p;
}

}  // namespace

const Piece& Layout::locate(int64_t row, int64_t& local) const {
    for (const auto& p : pieces) {
        const int64_t n = p.n * p.rows;
        if (row < n) {
            local = row;
            return p;
        }
        row -= n;
    }
    fail("row outside the weight");
}

namespace {

// Fused experts (gate|up of every expert): parts that are each a per-expert list of the same experts. The pieces go
// expert by expert, each expert's parts in order, so logical row e * rows + r reads them in sequence.
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
    const int64_t n = parts[0].shape[0];
    int64_t rows = 0;
    for (const auto& p : parts) rows += p.shape[1];
    for (int64_t e = 0; e < n; ++e)
        for (const auto& p : parts) {
            const Piece& piece = p.pieces[size_t(e)];
            const Piece& first = parts[0].pieces[size_t(e)];
            if (piece.globals[0] != first.globals[0] || piece.compressed_tensors() != first.compressed_tensors()) {
                l.refusal = "fused expert parts '" + first.codes->name + "' and '" + piece.codes->name +
                            "' have different per-tensor scales";
                return l;
            }
            l.pieces.push_back(piece);
        }
    l.shape = {n, rows, parts[0].shape[2]};
    l.parts_per_expert = int64_t(parts.size());
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
        l.shape = f.codes->shape.size() == 3 ? std::vector<int64_t>{f.n, f.rows, f.cols}
                                             : std::vector<int64_t>{f.rows, f.cols};
        return l;
    }
    int64_t rows = 0;
    for (const auto& p : l.pieces) {
        const bool stack = p.n == 1 && p.cols == f.cols && (src.experts.empty() || p.rows == f.rows);
        if (!stack) {
            l.refusal = "'" + p.codes->name + "' " + shape_str(p.codes->shape) + " does not stack with '" +
                        f.codes->name + "' " + shape_str(f.codes->shape);
            return l;
        }
        if (!src.parts.empty() && (p.globals[0] != f.globals[0] || p.compressed_tensors() != f.compressed_tensors())) {
            l.refusal = "fused parts '" + f.codes->name + "' and '" + p.codes->name +
                        "' have different per-tensor scales";
            return l;
        }
        rows += p.rows;
    }
    if (!src.parts.empty()) l.shape = {rows, f.cols};
    else l.shape = {int64_t(l.pieces.size()), f.rows, f.cols};
    return l;
}

}  // namespace imp::nvfp4
