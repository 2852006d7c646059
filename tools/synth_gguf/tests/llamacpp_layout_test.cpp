// synth-gguf's Gated-DeltaNet hybrid files against the layout llama.cpp (commit 0c1e570) reads: the metadata keys its
// loaders require, with their GGUF types, and exactly the tensors its load_arch_tensors creates (llama.cpp refuses a
// file with a missing key, a wrong type, a wrong shape or an extra tensor). The expected lists below are data copied
// from llama.cpp's sources, not from synth-gguf; the test runs on the plan (no weight data), so the full-size shapes
// are checked too.
#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "model_plan.h"

namespace {

enum : uint32_t { U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STR = 8, ARR = 9 };

// One decoded metadata entry: scalar type, or ARR with its element type and count.
struct Kv {
    uint32_t type = 0, elem = 0;
    uint64_t count = 0;
    std::string data;  // the scalar value, or the array elements
    uint32_t u32() const { uint32_t v; std::memcpy(&v, data.data(), 4); return v; }
    float f32() const { float v; std::memcpy(&v, data.data(), 4); return v; }
    int32_t i32(size_t i) const { int32_t v; std::memcpy(&v, data.data() + 4 * i, 4); return v; }
    bool b(size_t i) const { return data.at(i) != 0; }
};

std::map<std::string, Kv> decode(const std::vector<synth::KeyValue>& kvs) {
    std::map<std::string, Kv> out;
    for (const auto& e : kvs) {
        Kv k;
        k.type = e.type;
        if (e.type == ARR) {
            std::memcpy(&k.elem, e.value.data(), 4);
            std::memcpy(&k.count, e.value.data() + 4, 8);
            k.data = e.value.substr(12);
        } else {
            k.data = e.value;
        }
        REQUIRE(out.emplace(e.key, k).second);  // one entry per key
    }
    return out;
}

// The keys llama.cpp reads for these architectures. type: the scalar type, or ARR; elem / len for arrays (len 0: the
// block count). Sources: src/llama-model.cpp llama_model_base::load_hparams (lines 1321-1440: the general keys) and
// src/models/{qwen35moe,qwen3next}.cpp load_arch_hparams (lines 4-34 / 4-28); key strings in src/llama-arch.cpp
// lines 195-351. llama_model_loader::get_key checks the scalar type exactly (GGUFMeta::GKV), get_key_or_arr the array
// length (llama-model-loader.cpp 459-482).
struct KeySpec {
    const char* key;  // after "{arch}."
    uint32_t type, elem;
    int len;
    bool required;
};
const std::vector<KeySpec> kCommonKeys = {
    {"context_length", U32, 0, 0, true},          {"embedding_length", U32, 0, 0, true},
    {"block_count", U32, 0, 0, true},             {"nextn_predict_layers", U32, 0, 0, false},
    {"expert_count", U32, 0, 0, false},           {"expert_used_count", U32, 0, 0, false},
    {"feed_forward_length", U32, 0, 0, false},    {"attention.head_count", U32, 0, 0, false},
    {"attention.head_count_kv", U32, 0, 0, false}, {"rope.freq_base", F32, 0, 0, false},
    {"attention.key_length", U32, 0, 0, false},   {"attention.value_length", U32, 0, 0, false},
    {"rope.dimension_count", U32, 0, 0, false},
    // load_arch_hparams
    {"expert_feed_forward_length", U32, 0, 0, false}, {"expert_shared_feed_forward_length", U32, 0, 0, false},
    {"attention.layer_norm_rms_epsilon", F32, 0, 0, true},
    {"ssm.conv_kernel", U32, 0, 0, true},         {"ssm.inner_size", U32, 0, 0, true},
    {"ssm.state_size", U32, 0, 0, true},          {"ssm.time_step_rank", U32, 0, 0, true},
    {"ssm.group_count", U32, 0, 0, true},         {"attention.recurrent_layers", ARR, BOOL, 0, false},
    {"full_attention_interval", U32, 0, 0, false},
};
// qwen35moe.cpp line 9 (qwen35.cpp line 6): get_key_or_arr(LLM_KV_ROPE_DIMENSION_SECTIONS, rope_sections, 4, true)
const KeySpec kSections = {"rope.dimension_sections", ARR, I32, 4, true};

void check_keys(const std::string& arch, const std::map<std::string, Kv>& md) {
    std::vector<KeySpec> spec = kCommonKeys;
    if (arch != "qwen3next") spec.push_back(kSections);
    const uint32_t n_all = md.at(arch + ".block_count").u32();
    for (const auto& k : spec) {
        const std::string key = arch + "." + k.key;
        INFO(key);
        auto it = md.find(key);
        if (it == md.end()) {
            CHECK_FALSE(k.required);
            continue;
        }
        CHECK(it->second.type == k.type);
        if (k.type == ARR) {
            CHECK(it->second.elem == k.elem);
            CHECK(it->second.count == uint64_t(k.len ? uint32_t(k.len) : n_all));
        }
    }
}

// What convert_hf_to_gguf.py (conversion/qwen.py Qwen3NextModel / Qwen3_5MoeTextModel, conversion/base.py
// TextModel.set_gguf_parameters) writes from the real configs: Qwen/Qwen3.6-35B-A3B and Qwen/Qwen3-Next-80B-A3B.
struct Pinned {
    const char* shape;
    std::map<std::string, uint32_t> u32;
    std::vector<int32_t> sections;  // empty: none (qwen3next)
    bool has_ff;                    // feed_forward_length (Qwen3-Next's intermediate_size; Qwen3.6 has none)
};
const std::vector<Pinned> kPinned = {
    {"qwen3.6-35b-a3b",
     {{"block_count", 40}, {"embedding_length", 2048}, {"context_length", 262144}, {"attention.head_count", 16},
      {"attention.head_count_kv", 2}, {"attention.key_length", 256}, {"attention.value_length", 256},
      {"rope.dimension_count", 64}, {"expert_count", 256}, {"expert_used_count", 8},
      {"expert_feed_forward_length", 512}, {"expert_shared_feed_forward_length", 512}, {"ssm.conv_kernel", 4},
      {"ssm.state_size", 128}, {"ssm.group_count", 16}, {"ssm.time_step_rank", 32}, {"ssm.inner_size", 4096},
      {"full_attention_interval", 4}, {"vocab_size", 248320}},
     {11, 11, 10, 0}, false},
    {"qwen3-next-80b-a3b",
     {{"block_count", 48}, {"embedding_length", 2048}, {"context_length", 262144}, {"attention.head_count", 16},
      {"attention.head_count_kv", 2}, {"attention.key_length", 256}, {"attention.value_length", 256},
      {"rope.dimension_count", 64}, {"expert_count", 512}, {"expert_used_count", 10},
      {"expert_feed_forward_length", 512}, {"expert_shared_feed_forward_length", 512}, {"feed_forward_length", 5120},
      {"ssm.conv_kernel", 4}, {"ssm.state_size", 128}, {"ssm.group_count", 16}, {"ssm.time_step_rank", 32},
      {"ssm.inner_size", 4096}, {"full_attention_interval", 4}, {"vocab_size", 151936}},
     {}, true},
};

// The tensors llama.cpp creates, with their ne (innermost first). Sources: src/models/qwen35moe.cpp
// load_arch_tensors lines 43-103 and src/models/qwen3next.cpp lines 41-106 (full-attention q/k/v through
// llama_model_base::create_tensor_qkv, llama-model.cpp 3396-3430, unfused as the converter writes them by default;
// experts through create_tensor_gate_up_exps, 3379-3394, unfused likewise); tensor names in src/llama-arch.cpp
// lines 440-524. Dims: E n_embd, V vocab, H heads, G kv heads, D head dim, K = state_size * group_count,
// W = state_size * time_step_rank, R time_step_rank, S state_size, C conv_kernel, X experts, F expert FFN,
// Z shared FFN; L: which layers (g: global, a: every layer, f: full attention, r: recurrent/GDN, m: the MTP block;
// qwen35moe.cpp 105-138: the MTP block after the trunk is an 'a' + 'f' block plus its 'm' tensors).
struct TensorSpec {
    char layers;
    const char* name;
    const char* ne;  // letters for dims; '2' doubles the next dim, '+' = 2K + W (conv channels)
    const char* archs;  // "" = all; "moe" qwen35moe only; "next" qwen3next only
};
const std::vector<TensorSpec> kTensors = {
    {'g', "token_embd.weight", "EV", ""},         {'g', "output_norm.weight", "E", ""},
    {'g', "output.weight", "EV", ""},             {'a', "attn_norm.weight", "E", ""},
    {'a', "post_attention_norm.weight", "E", ""}, {'f', "attn_q.weight", "E2Q", ""},
    {'f', "attn_k.weight", "EN", ""},             {'f', "attn_v.weight", "EN", ""},
    {'f', "attn_output.weight", "QE", ""},        {'f', "attn_q_norm.weight", "D", ""},
    {'f', "attn_k_norm.weight", "D", ""},         {'r', "attn_qkv.weight", "E+", ""},
    {'r', "attn_gate.weight", "EW", ""},          {'r', "ssm_conv1d.weight", "C+", ""},
    {'r', "ssm_dt.bias", "R", ""},                {'r', "ssm_a", "R", ""},
    {'r', "ssm_beta.weight", "ER", "moe"},        {'r', "ssm_alpha.weight", "ER", "moe"},
    {'r', "ssm_ba.weight", "E2R", "next"},        {'r', "ssm_norm.weight", "S", ""},
    {'r', "ssm_out.weight", "WE", ""},            {'a', "ffn_gate_inp.weight", "EX", ""},
    {'a', "ffn_down_exps.weight", "FEX", ""},     {'a', "ffn_gate_exps.weight", "EFX", ""},
    {'a', "ffn_up_exps.weight", "EFX", ""},       {'a', "ffn_gate_inp_shexp.weight", "E", ""},
    {'a', "ffn_gate_shexp.weight", "EZ", ""},     {'a', "ffn_up_shexp.weight", "EZ", ""},
    {'a', "ffn_down_shexp.weight", "ZE", ""},
    {'m', "nextn.eh_proj.weight", "2EE", "moe"},  {'m', "nextn.enorm.weight", "E", "moe"},
    {'m', "nextn.hnorm.weight", "E", "moe"},      {'m', "nextn.shared_head_norm.weight", "E", "moe"},
};

std::map<std::string, std::vector<int64_t>> expected_tensors(const std::string& arch,
                                                             const std::map<std::string, Kv>& md, int64_t n_vocab) {
    auto u = [&](const char* k) { return int64_t(md.at(arch + "." + k).u32()); };
    const int64_t E = u("embedding_length"), H = u("attention.head_count"), G = u("attention.head_count_kv");
    const int64_t D = u("attention.key_length"), S = u("ssm.state_size"), R = u("ssm.time_step_rank");
    const int64_t K = S * u("ssm.group_count"), W = S * R;
    std::map<char, int64_t> dim = {{'E', E}, {'V', n_vocab}, {'Q', H * D}, {'N', G * D}, {'D', D},
                                   {'W', W}, {'R', R}, {'S', S}, {'C', u("ssm.conv_kernel")}, {'+', 2 * K + W},
                                   {'X', u("expert_count")}, {'F', u("expert_feed_forward_length")},
                                   {'Z', u("expert_shared_feed_forward_length")}};
    // the layer schedule as load_arch_hparams derives it (qwen35moe.cpp 19-26); MTP blocks are never recurrent
    const int64_t n_all = u("block_count");
    const int64_t n_layer = n_all - (md.count(arch + ".nextn_predict_layers") ? u("nextn_predict_layers") : 0);
    std::vector<bool> recr(static_cast<size_t>(n_all), false);
    if (auto it = md.find(arch + ".attention.recurrent_layers"); it != md.end()) {
        for (int64_t i = 0; i < n_all; ++i) recr[size_t(i)] = it->second.b(size_t(i));
    } else {
        const int64_t every = md.count(arch + ".full_attention_interval") ? u("full_attention_interval") : 4;
        for (int64_t i = 0; i < n_all; ++i) recr[size_t(i)] = i < n_layer && (i + 1) % every != 0;
    }
    for (int64_t i = n_layer; i < n_all; ++i) CHECK_FALSE(recr[size_t(i)]);
    std::map<std::string, std::vector<int64_t>> out;
    for (const auto& t : kTensors) {
        if ((std::strcmp(t.archs, "moe") == 0 && arch == "qwen3next") ||
            (std::strcmp(t.archs, "next") == 0 && arch != "qwen3next"))
            continue;
        std::vector<int64_t> ne;
        for (const char* c = t.ne; *c; ++c) {
            if (*c == '2') ne.push_back(2 * dim.at(*++c));
            else ne.push_back(dim.at(*c));
        }
        for (int64_t i = (t.layers == 'g' ? -1 : 0); i < (t.layers == 'g' ? 0 : n_all); ++i) {
            if ((t.layers == 'f' && recr[size_t(i)]) || (t.layers == 'r' && !recr[size_t(i)]) ||
                (t.layers == 'm' && i < n_layer))
                continue;
            out[(i < 0 ? "" : "blk." + std::to_string(i) + ".") + t.name] = ne;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("synth-gguf hybrid files carry the metadata and tensors llama.cpp's loaders read", "[synth_gguf]") {
    for (const char* name : {"tiny-qwen35moe", "tiny-qwen3next", "qwen3.6-35b-a3b", "qwen3-next-80b-a3b"}) {
        for (const char* quant : {"q4_k_m", "q8_0"}) for (const bool mtp : {false, true}) {
            INFO(name << " " << quant << (mtp ? " --mtp" : ""));
            const synth::Shape* s = synth::find_shape(name);
            REQUIRE(s);
            if (mtp && s->arch != "qwen35moe") {  // only the qwen35moe shapes have the block
                CHECK_THROWS(synth::plan_tensors(*s, quant, true));
                continue;
            }
            const auto md = decode(synth::make_metadata(*s, quant, mtp));
            CHECK(md.count(s->arch + ".nextn_predict_layers") == (mtp ? 1u : 0u));
            CHECK(md.at("general.architecture").type == STR);
            check_keys(s->arch, md);
            // the tokenizer llama.cpp's vocab loader knows for these (llama-vocab.cpp 2259-2266)
            CHECK((s->pre == "qwen35" || s->pre == "qwen2"));
            const auto want = expected_tensors(s->arch, md, s->n_vocab);
            std::map<std::string, std::vector<int64_t>> got;
            for (const auto& t : synth::plan_tensors(*s, quant, mtp)) {
                std::vector<int64_t> ne = t.ne;
                while (ne.size() > 1 && ne.back() == 1) ne.pop_back();
                got[t.name] = ne;
                // llama-quant.cpp never quantizes 1-D tensors, routers (300-310) or ssm_conv1d (324)
                if (ne.size() == 1 || t.name.find("ffn_gate_inp") != std::string::npos ||
                    t.name.find("ssm_conv1d") != std::string::npos)
                    CHECK(t.type == synth::kF32);
            }
            for (const auto& [n, ne] : want) {
                INFO(n);
                REQUIRE(got.count(n));
                CHECK(got.at(n) == ne);
            }
            for (const auto& [n, ne] : got) {
                INFO("tensor llama.cpp does not create: " << n);
                CHECK(want.count(n));  // done_getting_tensors: "wrong number of tensors"
            }
        }
    }
}

TEST_CASE("the full-size hybrid shapes hold the real models' hyper-parameters", "[synth_gguf]") {
    for (const auto& p : kPinned) {
        INFO(p.shape);
        const synth::Shape* s = synth::find_shape(p.shape);
        REQUIRE(s);
        const auto md = decode(synth::make_metadata(*s, "q4_k_m"));
        for (const auto& [k, v] : p.u32) {
            INFO(k);
            REQUIRE(md.count(s->arch + "." + k));
            CHECK(md.at(s->arch + "." + k).u32() == v);
        }
        CHECK(md.count(s->arch + ".feed_forward_length") == (p.has_ff ? 1u : 0u));
        const auto sec = md.find(s->arch + ".rope.dimension_sections");
        REQUIRE((sec != md.end()) == !p.sections.empty());
        for (size_t i = 0; i < p.sections.size(); ++i) CHECK(sec->second.i32(i) == p.sections[i]);
        // every 4th layer full attention, in the per-layer list too
        const Kv& rl = md.at(s->arch + ".attention.recurrent_layers");
        for (uint64_t i = 0; i < rl.count; ++i) CHECK(rl.b(i) == ((i + 1) % 4 != 0));
        CHECK(md.at(s->arch + ".rope.freq_base").f32() == 1e7f);
        CHECK(md.at(s->arch + ".attention.layer_norm_rms_epsilon").f32() == 1e-6f);
    }
}
