#include "model_plan.h"

#include <cmath>
#include <cstring>
#include <numbers>
#include <stdexcept>

namespace synth {

namespace {

// GGUF metadata value types.
enum : uint32_t { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STR = 8, T_ARR = 9 };

template <class T>
void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
}
void put_str(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out += s;
}

KeyValue kv_u32(const std::string& k, uint32_t v) {
    KeyValue e{k, T_U32, {}};
    put(e.value, v);
    return e;
}
KeyValue kv_f32(const std::string& k, double v) {
    KeyValue e{k, T_F32, {}};
    put(e.value, float(v));
    return e;
}
KeyValue kv_bool(const std::string& k, bool v) {
    KeyValue e{k, T_BOOL, {}};
    put<uint8_t>(e.value, v ? 1 : 0);
    return e;
}
KeyValue kv_str(const std::string& k, const std::string& v) {
    KeyValue e{k, T_STR, {}};
    put_str(e.value, v);
    return e;
}
KeyValue kv_strs(const std::string& k, const std::vector<std::string>& v) {
    KeyValue e{k, T_ARR, {}};
    put<uint32_t>(e.value, T_STR);
    put<uint64_t>(e.value, v.size());
    for (const auto& s : v) put_str(e.value, s);
    return e;
}
KeyValue kv_i32s(const std::string& k, const std::vector<int32_t>& v) {
    KeyValue e{k, T_ARR, {}};
    put<uint32_t>(e.value, T_I32);
    put<uint64_t>(e.value, v.size());
    for (int32_t x : v) put(e.value, x);
    return e;
}
KeyValue kv_bools(const std::string& k, const std::vector<bool>& v) {
    KeyValue e{k, T_ARR, {}};
    put<uint32_t>(e.value, T_BOOL);
    put<uint64_t>(e.value, v.size());
    for (bool x : v) put<uint8_t>(e.value, x ? 1 : 0);
    return e;
}

// GPT-2 byte-level BPE: each byte is shown as one code point (printable Latin-1 bytes as themselves, the rest
// shifted to 256+), UTF-8 encoded.
std::string byte_token(int b) {
    uint32_t cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = uint32_t(b);
    } else {
        int n = 0;
        for (int x = 0; x < b; ++x)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
        cp = 256u + uint32_t(n);
    }
    std::string s;
    if (cp < 0x80) {
        s += char(cp);
    } else {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
    }
    return s;
}

// Llama-3 rope frequency divisors, as the GGUF converter writes rope_freqs.weight (low 1, high 4, original 8192).
std::vector<float> llama3_freqs(const Shape& s) {
    const int n_rot = int(s.head_dim);
    const double low_f = 1.0, high_f = 4.0, orig = 8192.0, factor = s.llama3_rope_factor;
    const double low_wl = orig / low_f, high_wl = orig / high_f;
    std::vector<float> out(size_t(n_rot / 2));
    for (int i = 0; i < n_rot / 2; ++i) {
        const double freq = std::pow(s.rope_base, -2.0 * i / n_rot);
        const double wl = 2.0 * std::numbers::pi / freq;
        double f;
        if (wl < high_wl) {
            f = 1.0;
        } else if (wl > low_wl) {
            f = factor;
        } else {
            const double smooth = (orig / wl - low_f) / (high_f - low_f);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        out[size_t(i)] = float(f);
    }
    return out;
}

// llama.cpp src/llama-quant.cpp: the layers that get more bits in the *_M mixes.
bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

}  // namespace

const TypeInfo& type_info(uint32_t t) {
    static const TypeInfo f32{"F32", 1, 4}, q8{"Q8_0", 32, 34}, q4k{"Q4_K", 256, 144}, q6k{"Q6_K", 256, 210},
        bf16{"BF16", 1, 2};
    switch (t) {
        case kF32: return f32;
        case kQ8_0: return q8;
        case kQ4_K: return q4k;
        case kQ6_K: return q6k;
        case kBF16: return bf16;
    }
    throw std::runtime_error("internal: unknown ggml type " + std::to_string(t));
}

const std::vector<Shape>& shapes() {
    // name, arch, n_embd, n_layer, n_head, n_kv, head_dim, n_ff, n_vocab, n_ctx, rope_base, eps, llama3 factor,
    // tied, qk_norm, pre, n_special
    static const std::vector<Shape> table = {
        {"tiny", "llama", 256, 2, 4, 2, 64, 512, 512, 2048, 10000.0, 1e-5, 0.0, false, false, "llama-bpe", 2},
        {"tiny-qwen3", "qwen3", 256, 2, 4, 2, 64, 512, 512, 2048, 1000000.0, 1e-6, 0.0, false, true, "qwen2", 2},
        {"smollm2-135m", "llama", 576, 30, 9, 3, 64, 1536, 49152, 8192, 100000.0, 1e-5, 0.0, true, false, "smollm",
         17},
        {"llama3.2-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 131072, 500000.0, 1e-5, 32.0, true, false,
         "llama-bpe", 256},
        {"llama3.2-3b", "llama", 3072, 28, 24, 8, 128, 8192, 128256, 131072, 500000.0, 1e-5, 32.0, true, false,
         "llama-bpe", 256},
        {"llama3.1-8b", "llama", 4096, 32, 32, 8, 128, 14336, 128256, 131072, 500000.0, 1e-5, 8.0, false, false,
         "llama-bpe", 256},
        {"qwen3-8b", "qwen3", 4096, 36, 32, 8, 128, 12288, 151936, 40960, 1000000.0, 1e-6, 0.0, false, true, "qwen2",
         293},
        // MoE shapes (experts in moe_shapes.cpp); n_ff is the dense feed_forward_length the GGUF carries
        {"tiny-qwen3moe", "qwen3moe", 256, 2, 4, 2, 64, 512, 512, 2048, 1000000.0, 1e-6, 0.0, false, true, "qwen2", 2},
        {"qwen3-30b-a3b", "qwen3moe", 2048, 48, 32, 4, 128, 6144, 151936, 40960, 1000000.0, 1e-6, 0.0, false, true,
         "qwen2", 293},
        // Gated-DeltaNet hybrids (GDN and experts in hybrid_shapes.cpp); every layer is MoE. n_ff: the dense
        // intermediate_size Qwen3-Next's config carries (written as feed_forward_length, as the converter does);
        // Qwen3.5 / 3.6 MoE configs have none (0: no feed_forward_length key)
        {"tiny-qwen35moe", "qwen35moe", 256, 4, 4, 2, 64, 0, 512, 2048, 10000000.0, 1e-6, 0.0, false, true, "qwen35",
         3},
        {"tiny-qwen3next", "qwen3next", 256, 4, 4, 2, 64, 512, 512, 2048, 10000000.0, 1e-6, 0.0, false, true, "qwen2",
         3},
        {"qwen3.6-35b-a3b", "qwen35moe", 2048, 40, 16, 2, 256, 0, 248320, 262144, 10000000.0, 1e-6, 0.0, false, true,
         "qwen35", 77},
        {"qwen3-next-80b-a3b", "qwen3next", 2048, 48, 16, 2, 256, 5120, 151936, 262144, 10000000.0, 1e-6, 0.0, false,
         true, "qwen2", 293},
    };
    return table;
}

const Shape* find_shape(const std::string& name) {
    for (const auto& s : shapes())
        if (s.name == name) return &s;
    return nullptr;
}

uint32_t file_type(const std::string& quant) {
    if (quant == "q8_0") return 7;     // LLAMA_FTYPE_MOSTLY_Q8_0
    if (quant == "q4_k_m") return 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M
    if (quant == "bf16") return 32;    // LLAMA_FTYPE_MOSTLY_BF16
    throw std::runtime_error("unknown --quant '" + quant + "' (q8_0, q4_k_m, bf16)");
}

std::vector<TensorPlan> plan_tensors(const Shape& s, const std::string& quant, bool mtp) {
    file_type(quant);  // validates the name
    if (mtp && (s.arch != "qwen35moe" || !find_hybrid(s.name)))
        throw std::runtime_error("--mtp: shape " + s.name + " has no multi-token-prediction block (qwen35moe shapes)");
    std::vector<TensorPlan> t;
    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, uint32_t type) {
        const TypeInfo& ti = type_info(type);
        if (cols % ti.block != 0)
            throw std::runtime_error("shape " + s.name + ": tensor " + name + " has rows of " + std::to_string(cols) +
                                     " elements, not a multiple of the " + ti.name + " block of " +
                                     std::to_string(ti.block) + " (use another --quant)");
        t.push_back(TensorPlan{name, {cols, rows}, type, TensorPlan::Fill::Weight, {}, 0, 0});
    };
    auto norm = [&](const std::string& name, int64_t n) {
        t.push_back(TensorPlan{name, {n}, kF32, TensorPlan::Fill::Norm, {}, 0, 0});
    };
    const bool km = quant == "q4_k_m";
    const uint32_t base = quant == "q8_0" ? kQ8_0 : quant == "bf16" ? kBF16 : kQ4_K;
    // Q4_K_M: the LM head in Q6_K (token_embd too when it is the LM head), attn_v and ffn_down in Q6_K in the
    // use_more_bits layers, Q4_K elsewhere.
    const uint32_t head = km ? kQ6_K : base;
    const int64_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_kv * s.head_dim;
    matrix("token_embd.weight", s.n_vocab, s.n_embd, s.tied ? head : base);
    if (s.llama3_rope_factor > 0)
        t.push_back(TensorPlan{"rope_freqs.weight", {s.head_dim / 2}, kF32, TensorPlan::Fill::Values,
                               llama3_freqs(s), 0, 0});
    for (int64_t i = 0; i < s.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        const uint32_t more = km && use_more_bits(i, s.n_layer) ? kQ6_K : base;
        if (const HybridShape* h = find_hybrid(s.name)) {
            plan_hybrid_layer(s, *h, i, base, more, t);
            continue;
        }
        norm(p + "attn_norm.weight", s.n_embd);
        matrix(p + "attn_q.weight", q_dim, s.n_embd, base);
        matrix(p + "attn_k.weight", kv_dim, s.n_embd, base);
        matrix(p + "attn_v.weight", kv_dim, s.n_embd, more);
        matrix(p + "attn_output.weight", s.n_embd, q_dim, base);
        if (s.qk_norm) {
            norm(p + "attn_q_norm.weight", s.head_dim);
            norm(p + "attn_k_norm.weight", s.head_dim);
        }
        norm(p + "ffn_norm.weight", s.n_embd);
        if (const MoeShape* m = find_moe(s.name)) {
            // llama.cpp's Q4_K_M treats ffn_down_exps as ffn_down (Q6_K in the use_more_bits layers)
            t.push_back(TensorPlan{p + "ffn_gate_inp.weight", {s.n_embd, m->n_expert}, kF32,
                                   TensorPlan::Fill::Weight, {}, 0, 0});
            matrix(p + "ffn_gate_exps.weight", m->n_ff_exp, s.n_embd, base);
            t.back().ne.push_back(m->n_expert);
            matrix(p + "ffn_up_exps.weight", m->n_ff_exp, s.n_embd, base);
            t.back().ne.push_back(m->n_expert);
            matrix(p + "ffn_down_exps.weight", s.n_embd, m->n_ff_exp, more);
            t.back().ne.push_back(m->n_expert);
            continue;
        }
        matrix(p + "ffn_gate.weight", s.n_ff, s.n_embd, base);
        matrix(p + "ffn_up.weight", s.n_ff, s.n_embd, base);
        matrix(p + "ffn_down.weight", s.n_embd, s.n_ff, more);
    }
    norm("output_norm.weight", s.n_embd);
    if (!s.tied) matrix("output.weight", s.n_vocab, s.n_embd, head);
    // last, so the other tensors' data (seeded by their index) is the same with and without it
    if (mtp) plan_hybrid_layer(s, *find_hybrid(s.name), s.n_layer, base, base, t, true);

    uint64_t off = 0;
    for (auto& x : t) {
        const TypeInfo& ti = type_info(x.type);
        int64_t n = 1;
        for (auto d : x.ne) n *= d;
        x.nbytes = uint64_t(n / ti.block) * uint64_t(ti.bytes);
        x.offset = off;
        off = (off + x.nbytes + 31) / 32 * 32;
    }
    return t;
}

std::vector<KeyValue> make_metadata(const Shape& s, const std::string& quant, bool mtp) {
    const std::string a = s.arch;
    std::vector<KeyValue> kv;
    kv.push_back(kv_str("general.architecture", a));
    kv.push_back(kv_str("general.name", "synthetic " + s.name + " " + quant + " (random weights)"));
    kv.push_back(kv_u32("general.file_type", file_type(quant)));
    kv.push_back(kv_u32("general.quantization_version", 2));
    kv.push_back(kv_u32("general.alignment", 32));
    kv.push_back(kv_u32(a + ".context_length", uint32_t(s.n_ctx)));
    kv.push_back(kv_u32(a + ".embedding_length", uint32_t(s.n_embd)));
    kv.push_back(kv_u32(a + ".block_count", uint32_t(s.n_layer + (mtp ? 1 : 0))));
    if (mtp) kv.push_back(kv_u32(a + ".nextn_predict_layers", 1));
    if (s.n_ff > 0) kv.push_back(kv_u32(a + ".feed_forward_length", uint32_t(s.n_ff)));
    kv.push_back(kv_u32(a + ".attention.head_count", uint32_t(s.n_head)));
    kv.push_back(kv_u32(a + ".attention.head_count_kv", uint32_t(s.n_kv)));
    kv.push_back(kv_u32(a + ".attention.key_length", uint32_t(s.head_dim)));
    kv.push_back(kv_u32(a + ".attention.value_length", uint32_t(s.head_dim)));
    const HybridShape* hybrid = find_hybrid(s.name);  // partial rotary
    kv.push_back(kv_u32(a + ".rope.dimension_count", uint32_t(hybrid ? hybrid->n_rot : s.head_dim)));
    kv.push_back(kv_f32(a + ".rope.freq_base", s.rope_base));
    kv.push_back(kv_f32(a + ".attention.layer_norm_rms_epsilon", s.eps));
    kv.push_back(kv_u32(a + ".vocab_size", uint32_t(s.n_vocab)));
    if (const MoeShape* m = find_moe(s.name)) {
        kv.push_back(kv_u32(a + ".expert_count", uint32_t(m->n_expert)));
        kv.push_back(kv_u32(a + ".expert_used_count", uint32_t(m->n_expert_used)));
        kv.push_back(kv_u32(a + ".expert_feed_forward_length", uint32_t(m->n_ff_exp)));
    }
    if (const HybridShape* h = find_hybrid(s.name)) {
        kv.push_back(kv_u32(a + ".expert_count", uint32_t(h->n_expert)));
        kv.push_back(kv_u32(a + ".expert_used_count", uint32_t(h->n_expert_used)));
        kv.push_back(kv_u32(a + ".expert_feed_forward_length", uint32_t(h->n_ff_exp)));
        kv.push_back(kv_u32(a + ".expert_shared_feed_forward_length", uint32_t(h->n_ff_shared)));
        kv.push_back(kv_u32(a + ".ssm.conv_kernel", uint32_t(h->conv_kernel)));
        kv.push_back(kv_u32(a + ".ssm.state_size", uint32_t(h->head_k_dim)));
        kv.push_back(kv_u32(a + ".ssm.group_count", uint32_t(h->n_k_heads)));
        kv.push_back(kv_u32(a + ".ssm.time_step_rank", uint32_t(h->n_v_heads)));
        kv.push_back(kv_u32(a + ".ssm.inner_size", uint32_t(h->n_v_heads * h->head_v_dim)));
        // the layer schedule both ways, as convert_hf_to_gguf.py writes it (Qwen3NextModel.set_gguf_parameters):
        // the per-layer list from the config's layer_types (true: Gated DeltaNet) and the interval
        std::vector<bool> recurrent;
        for (int64_t i = 0; i < s.n_layer; ++i) recurrent.push_back(!hybrid_full_attention(*h, i));
        if (mtp) recurrent.push_back(false);  // the MTP block is full attention
        kv.push_back(kv_bools(a + ".attention.recurrent_layers", recurrent));
        kv.push_back(kv_u32(a + ".full_attention_interval", uint32_t(h->full_every)));
        // interleaved MRoPE sections: required by llama.cpp's qwen35 / qwen35moe loaders
        // (get_key_or_arr(LLM_KV_ROPE_DIMENSION_SECTIONS, ..., 4, true)); Qwen3-Next has plain partial rotary
        if (a == "qwen35" || a == "qwen35moe")
            kv.push_back(kv_i32s(a + ".rope.dimension_sections",
                                 std::vector<int32_t>(h->rope_sections.begin(), h->rope_sections.end())));
    }

    // Vocabulary: 256 byte tokens, a few merges (and their results), filler tokens, control tokens at the end.
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(byte_token(b));
        types.push_back(1);
    }
    const std::string sp = byte_token(' ');  // "Ġ"
    const std::vector<std::pair<std::string, std::string>> pairs = {
        {sp, "t"},  {sp, "a"},  {"h", "e"},  {"i", "n"},  {"r", "e"},  {"o", "n"},   {sp + "t", "he"}, {"e", "r"},
        {sp, "s"},  {"a", "t"}, {sp, "w"},   {sp, "o"},   {"e", "n"},  {sp, "c"},    {"i", "s"},       {"o", "r"},
        {"e", "s"}, {sp, "b"},  {"e", "d"},  {sp, "f"},   {"i", "t"},  {sp, "p"},    {"a", "r"},       {"a", "n"},
        {sp, "m"},  {"a", "l"}, {sp, "in"},  {sp + "a", "n"}, {sp + "an", "d"}, {sp + "o", "f"}, {sp, "is"},
        {"in", "g"},
    };
    std::vector<std::string> merges;
    for (const auto& [l, r] : pairs) {
        merges.push_back(l + " " + r);
        tokens.push_back(l + r);
        types.push_back(1);
    }
    const int64_t n_normal = s.n_vocab - s.n_special;
    if (n_normal < int64_t(tokens.size()))
        throw std::runtime_error("shape " + s.name + ": vocabulary of " + std::to_string(s.n_vocab) + " is too small");
    for (int64_t i = int64_t(tokens.size()); i < n_normal; ++i) {
        tokens.push_back("synth" + std::to_string(i));
        types.push_back(1);
    }
    const bool qwen = s.pre == "qwen2" || s.pre == "qwen35";
    for (int i = 0; i < s.n_special; ++i) {
        std::string name;
        if (qwen) name = i == 0 ? "<|endoftext|>" : i == 1 ? "<|im_start|>" : i == 2 ? "<|im_end|>" : "";
        else name = i == 0 ? "<|begin_of_text|>" : i == 1 ? "<|end_of_text|>" : "";
        if (name.empty()) name = "<|reserved_special_token_" + std::to_string(i) + "|>";
        tokens.push_back(name);
        types.push_back(3);
    }
    kv.push_back(kv_str("tokenizer.ggml.model", "gpt2"));
    kv.push_back(kv_str("tokenizer.ggml.pre", s.pre));
    kv.push_back(kv_strs("tokenizer.ggml.tokens", tokens));
    kv.push_back(kv_i32s("tokenizer.ggml.token_type", types));
    kv.push_back(kv_strs("tokenizer.ggml.merges", merges));
    const uint32_t first_special = uint32_t(n_normal);
    kv.push_back(kv_u32("tokenizer.ggml.bos_token_id", first_special));
    const uint32_t eos = qwen && s.n_special > 2 ? first_special + 2 : first_special + 1;  // im_end / end_of_text
    kv.push_back(kv_u32("tokenizer.ggml.eos_token_id", eos));
    kv.push_back(kv_bool("tokenizer.ggml.add_bos_token", !qwen));
    return kv;
}

}  // namespace synth
