#include "cli/bench_report.h"
#include "model/quant_config.h"
#include "runtime/weight_sources.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

namespace imp::cli {

namespace {

// llama.cpp's llama_ftype values (general.file_type).
const char* ftype_name(int64_t t) {
    static const std::map<int64_t, const char*> names = {
        {0, "F32"},      {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},     {8, "Q5_0"},
        {9, "Q5_1"},     {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"},  {14, "Q4_K_S"},
        {15, "Q4_K_M"},  {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {19, "IQ2_XXS"}, {20, "IQ2_XS"},
        {21, "Q2_K_S"},  {22, "IQ3_XS"}, {23, "IQ3_XXS"}, {24, "IQ1_S"}, {25, "IQ4_NL"},  {26, "IQ3_S"},
        {27, "IQ3_M"},   {28, "IQ2_S"},  {29, "IQ2_M"},  {30, "IQ4_XS"}, {31, "IQ1_M"},   {32, "BF16"},
        {36, "TQ1_0"},   {37, "TQ2_0"},  {38, "MXFP4_MOE"}};
    auto it = names.find(t);
    return it == names.end() ? nullptr : it->second;
}

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            o += '\\';
            o += char(c);
        } else if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        } else {
            o += char(c);
        }
    }
    return o + "\"";
}

std::string json_num(double v) {
    if (!std::isfinite(v)) return "null";
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

// The load phases as a JSON array of {"what", "s", "file_bytes", "count"}.
std::string load_phases_json(const std::vector<LoadPhase>& phases) {
    std::string o = "[";
    for (const LoadPhase& p : phases)
        o += std::string(o.size() > 1 ? ", " : "") + "{\"what\": " + json_str(p.what) +
             ", \"s\": " + json_num(p.seconds) + ", \"file_bytes\": " + std::to_string(p.file_bytes) +
             ", \"count\": " + std::to_string(p.count) + "}";
    return o + "]";
}

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

bool is_tg(const TestResult& r) { return r.n_gen > 0; }

// The weight's parameters: the layer's logical shape ([out, in], [n_expert, out, in]), not the file tensor's element
// count, which is half of it for packed FP4 codes (U8 [out, in/2]); 0 when the spec leaves a dimension open.
uint64_t logical_params(const std::vector<int64_t>& shape) {
    if (shape.empty()) return 0;
    uint64_t n = 1;
    for (int64_t d : shape) {
        if (d <= 0) return 0;
        n *= uint64_t(d);
    }
    return n;
}

// A stack of n_expert experts of which each token runs top_k: a decoded token (batch 1) reads and multiplies by
// top_k / n_expert of the stack, whether the file holds it as one tensor or one tensor per expert.
void add_active_experts(const ModelSource& src, const WeightSpec& s, ModelFacts& m) {
    if (s.shape.empty() || s.shape[0] <= 0 || s.top_k <= 0) return;
    uint64_t bytes = 0, params = 0;
    bool found = false;
    if (const TensorInfo* t = src.find(s.name)) {
        bytes = t->nbytes, params = uint64_t(t->numel()), found = true;
    } else if (!s.expert_pattern.empty()) {
        for (int64_t e = 0; e < s.shape[0]; ++e)
            if (const TensorInfo* t = src.find(expert_tensor_name(s.expert_pattern, e)))
                bytes += t->nbytes, params += uint64_t(t->numel()), found = true;
    }
    if (found && logical_params(s.shape) > 0) params = logical_params(s.shape);
    const double active = double(std::min(s.top_k, s.shape[0])) / double(s.shape[0]);
    m.weight_bytes_per_token += uint64_t(double(bytes) * active + 0.5);
    m.layer_matmul_params += uint64_t(double(params) * active + 0.5);
}

}  // namespace

ModelFacts model_facts(const ModelSource& src, const Engine& engine) {
    ModelFacts m;
    m.path = src.path();
    m.name = std::filesystem::path(m.path).filename().string();
    if (m.name.empty()) m.name = std::filesystem::path(m.path).parent_path().filename().string();
    m.arch = src.architecture();
    m.file_bytes = src.file_bytes();
    for (const auto& t : src.tensors()) m.n_params += uint64_t(t.numel());

    const ModelDesc& d = engine.desc();
    std::map<std::string, uint64_t> type_bytes;
    for (const auto& layer : d.layers) {
        for (const auto& s : layer->weight_specs()) {
            if (s.use == WeightSpec::Use::Experts && s.values.empty()) {
                add_active_experts(src, s, m);
                continue;
            }
            // A 2-D weight kept in fp32 for an op of its own (the MoE router, a conv kernel) is read by every token.
            if (s.use == WeightSpec::Use::Vector && s.shape.size() == 2 && s.values.empty()) {
                if (const TensorInfo* t = src.find(s.name)) {
                    m.layer_matmul_params += uint64_t(t->numel());
                    m.weight_bytes_per_token += t->nbytes;
                }
                continue;
            }
            if (s.use != WeightSpec::Use::Matrix || !s.values.empty()) continue;
            const TensorInfo* t = src.find(s.name);
            if (!t) continue;  // absent optional weight
            const bool logical = s.shape.size() == 2 && logical_params(s.shape) > 0;
            m.layer_matmul_params += logical ? logical_params(s.shape) : uint64_t(t->numel());
            if (logical || t->shape.size() == 2) {
                const int64_t out = logical ? s.shape[0] : t->shape[0], in = logical ? s.shape[1] : t->shape[1];
                const int64_t best = m.ffn_out * m.ffn_in;
                if (out * in > best || (out * in == best && out > m.ffn_out)) {
                    m.ffn_out = out;
                    m.ffn_in = in;
                }
            }
            m.weight_bytes_per_token += t->nbytes;
            type_bytes[t->type] += t->nbytes;
        }
    }
    if (const TensorInfo* head = src.find(d.output)) {
        m.lm_head_params = d.n_vocab > 0 && d.n_embd > 0 ? uint64_t(d.n_vocab) * uint64_t(d.n_embd)
                                                          : uint64_t(head->numel());
        m.weight_bytes_per_token += head->nbytes;
    }
    const MetaValue* ft = src.metadata().find("general.file_type");
    const char* name = ft && ft->is_int() ? ftype_name(ft->as_int("general.file_type")) : nullptr;
    const QuantConfig qc = read_quant_config(src);
    if (name) {
        m.quant = name;
    } else if (!qc.algo.empty()) {
        m.quant = qc.algo;  // a prequantized checkpoint: "NVFP4", "FP8", "MIXED_PRECISION" (its storage reads U8)
    } else {
        uint64_t best = 0;
        for (const auto& [type, bytes] : type_bytes)
            if (bytes > best) {
                best = bytes;
                m.quant = type;
            }
    }
    return m;
}

double TestResult::avg_s() const {
    double s = 0;
    for (double x : seconds) s += x;
    return seconds.empty() ? 0 : s / double(seconds.size());
}

double TestResult::avg_ts() const {
    const double n = double(n_prompt + n_gen * batch);
    double s = 0;
    for (double x : seconds) s += n / x;
    return seconds.empty() ? 0 : s / double(seconds.size());
}

double TestResult::stddev_ts() const {
    if (seconds.size() < 2) return 0;
    const double n = double(n_prompt + n_gen * batch), mean = avg_ts();
    double ss = 0;
    for (double x : seconds) ss += (n / x - mean) * (n / x - mean);
    return std::sqrt(ss / double(seconds.size() - 1));
}

double prefill_tflops(const ModelFacts& m, const TestResult& r) {
    if (r.n_prompt <= 0 || r.avg_s() <= 0) return NAN;
    const double flops = 2.0 * (double(m.layer_matmul_params) * double(r.n_prompt) + double(m.lm_head_params));
    return flops * r.avg_ts() / double(r.n_prompt) / 1e12;
}

double prefill_vs_gemm(const ModelFacts& m, const TestResult& r, const GemmFacts& g) {
    if (!g.measured()) return NAN;
    return prefill_tflops(m, r) * 1e12 / g.flops_per_s;
}

double decode_efficiency(const ModelFacts& m, const TestResult& r, const DeviceFacts& d) {
    if (r.n_gen <= 0 || d.copy_bytes_per_s <= 0) return NAN;
    return double(m.weight_bytes_per_token) * r.avg_ts() / double(r.batch) / d.copy_bytes_per_s;
}

std::string format_markdown(const ModelFacts& m, const RunInfo& run, const std::vector<TestResult>& results) {
    std::string o;
    o += "device: " + run.device.name + " (" + run.executor + "), copy bandwidth " +
         fmt("%.1f", run.device.copy_bytes_per_s / 1e9) + " GB/s, peak memory " +
         fmt("%.2f", double(run.peak_vram_bytes) / double(1ull << 30)) + " GiB, graphs " + (run.graphs ? "on" : "off") +
         ", commit " + run.commit + "\n";
    std::string changed;
    for (const auto& x : run.settings)
        if (x.set) changed += (changed.empty() ? "" : ", ") + x.key + " = " + x.json;
    if (!changed.empty()) o += "settings: " + changed + "\n";
    o += "BF16 GEMM " +
         (run.gemm.measured() ? run.gemm.shape() + " (tokens x in x out): " + fmt("%.1f", run.gemm.flops_per_s / 1e12) +
                                    " TFLOP/s"
                              : std::string("not measured (") + run.executor + ")") +
         ", load to first token " +
         (std::isfinite(run.load_to_first_token_s) ? fmt("%.3f", run.load_to_first_token_s) + " s" : "-") + "\n";
    if (!run.load_phases.empty()) {
        o += "weight upload:";
        for (const LoadPhase& p : run.load_phases)
            o += std::string(&p == &run.load_phases.front() ? " " : ", ") + p.what + " " + fmt("%.2f", p.seconds) +
                 " s (" + fmt("%.2f", double(p.file_bytes) / double(1ull << 30)) + " GiB)";
        o += "\n";
    }
    o += "\n";
    o += "| model | size | quant | test | t/s | roofline |\n";
    o += "| --- | ---: | --- | ---: | ---: | ---: |\n";
    for (const auto& r : results) {
        std::string roof;
        if (!r.ablated.empty()) {
            const TestResult* base = nullptr;
            for (const auto& b : results)
                if (b.test == r.ablated_base) base = &b;
            roof = std::to_string(r.ablated_kernels) + " kernels off: " + fmt("%.2f", r.avg_s() * 1e3 / double(r.n_gen)) +
                   " ms per step" +
                   (base ? " (" + fmt("%+.1f", (r.avg_s() - base->avg_s()) * 1e6 / double(r.n_gen)) + " us)" : "");
        } else if (r.n_mixed > 0) roof = fmt("%.2f", r.avg_s() * 1e3 / double(r.n_gen)) + " ms per step";
        else if (is_tg(r)) roof = fmt("%.1f", 100.0 * decode_efficiency(m, r, run.device)) + " % of copy bw";
        else {
            roof = fmt("%.2f", prefill_tflops(m, r)) + " TFLOP/s";
            const double v = prefill_vs_gemm(m, r, run.gemm);
            if (std::isfinite(v)) roof += " (" + fmt("%.1f", 100.0 * v) + " % of BF16 GEMM)";
        }
        o += "| " + m.name + " | " + fmt("%.2f", double(m.file_bytes) / double(1ull << 30)) + " GiB | " + m.quant +
             " | " + r.test + " | " + fmt("%.2f", r.avg_ts()) + " ± " + fmt("%.2f", r.stddev_ts()) +
             (r.batch > 1 ? " (" + fmt("%.2f", r.avg_ts() / double(r.batch)) + " per sequence)" : std::string()) +
             " | " + roof +
             " |\n";
    }
    return o;
}

std::string format_json(const ModelFacts& m, const RunInfo& run, const std::vector<TestResult>& results) {
    std::string o = "[\n";
    for (size_t i = 0; i < results.size(); ++i) {
        const TestResult& r = results[i];
        std::string samples;
        for (double s : r.seconds)
            samples += (samples.empty() ? "" : ", ") + json_num(double(r.n_prompt + r.n_gen * r.batch) / s);
        const auto& d = run.device;
        o += "  {";
        o += "\"test\": " + json_str(r.test) + ", \"n_prompt\": " + std::to_string(r.n_prompt) +
             ", \"n_gen\": " + std::to_string(r.n_gen) + ", \"batch\": " + std::to_string(r.batch) + ", \"n_depth\": " + std::to_string(r.n_depth) +
             ", \"n_mixed\": " + std::to_string(r.n_mixed) + ", \"ablated\": " + json_str(r.ablated) +
             ", \"ablated_kernels\": " + std::to_string(r.ablated_kernels) +
             ", \"per_seq_ts\": " + json_num(r.avg_ts() / double(r.batch)) +
             ", \"reps\": " + std::to_string(r.seconds.size()) +
             ", \"avg_ts\": " + json_num(r.avg_ts()) + ", \"stddev_ts\": " + json_num(r.stddev_ts()) +
             ", \"avg_ms\": " + json_num(r.avg_s() * 1e3) + ", \"samples_ts\": [" + samples + "]";
        o += ", \"model\": " + json_str(m.name) + ", \"model_path\": " + json_str(m.path) +
             ", \"arch\": " + json_str(m.arch) + ", \"quant\": " + json_str(m.quant) +
             ", \"model_bytes\": " + std::to_string(m.file_bytes) + ", \"n_params\": " + std::to_string(m.n_params) +
             ", \"matmul_params\": " + std::to_string(m.layer_matmul_params + m.lm_head_params) +
             ", \"lm_head_params\": " + std::to_string(m.lm_head_params) +
             ", \"weight_bytes_per_token\": " + std::to_string(m.weight_bytes_per_token);
        o += ", \"device\": " + json_str(d.name) + ", \"executor\": " + json_str(run.executor) +
             ", \"cuda_version\": " + json_str(run.cuda_version) + ", \"cuda_driver\": " + json_str(d.cuda_driver) +
             ", \"commit\": " + json_str(run.commit) + ", \"imp_version\": " + json_str(run.imp_version) +
             ", \"profile\": " + json_str(run.profile) + ", \"kv_dtype\": " + json_str(run.kv_dtype) +
             ", \"timestamp\": " + json_str(run.timestamp);
        o += ", \"copy_bw_gbs\": " + json_num(d.copy_bytes_per_s / 1e9) +
             ", \"copy_buffer_bytes\": " + std::to_string(d.copy_buffer_bytes) +
             ", \"l2_cache_bytes\": " + std::to_string(d.l2_cache_bytes) +
             ", \"decode_efficiency\": " + json_num(is_tg(r) ? decode_efficiency(m, r, d) : NAN) +
             ", \"prefill_tflops\": " + json_num(is_tg(r) ? NAN : prefill_tflops(m, r)) +
             ", \"gemm_bf16_tflops\": " + json_num(run.gemm.measured() ? run.gemm.flops_per_s / 1e12 : NAN) +
             ", \"gemm_shape\": " + json_str(run.gemm.shape()) +
             ", \"prefill_vs_gemm\": " + json_num(is_tg(r) ? NAN : prefill_vs_gemm(m, r, run.gemm)) +
             ", \"load_to_first_token_s\": " + json_num(run.load_to_first_token_s) +
             ", \"first_token_prompt\": " + std::to_string(run.first_token_prompt) +
             ", \"load_phases\": " + load_phases_json(run.load_phases) +
             ", \"peak_vram_bytes\": " + std::to_string(run.peak_vram_bytes) +
             ", \"device_mem_used_bytes\": " + std::to_string(d.device_used_bytes) +
             ", \"graphs\": " + (run.graphs ? "true" : "false") +
             ", \"cuda_graphs\": " + (run.cuda_graphs ? "true" : "false") +
             ", \"logits_finite\": " + (run.logits_finite ? "true" : "false");
        std::string st, changed;
        for (const auto& x : run.settings) {
            st += (st.empty() ? "" : ", ") + json_str(x.key) + ": " + x.json;
            if (x.set) changed += (changed.empty() ? "" : ", ") + json_str(x.key);
        }
        o += ", \"settings\": {" + st + "}, \"settings_changed\": [" + changed + "]";
        o += ", \"runtime\": {" + run.runtime_json + "}";
        o += i + 1 < results.size() ? "},\n" : "}\n";
    }
    return o + "]\n";
}

}  // namespace imp::cli
