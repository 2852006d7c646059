// Tokenizer::from_hf: a Hugging Face tokenizer folder. tokenizer.json gives the BPE model (vocab, merges,
// byte_fallback, ignore_merges, unk_token), the added tokens, the normalizer and pre-tokenizer (hf_pipeline.cpp),
// the post-processor's prefix/suffix tokens and the decoder; tokenizer_config.json the chat template and the
// bos/eos tokens; generation_config.json the end-of-generation ids; chat_template.jinja a template file.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "imp/error.h"
#include "model/json.h"
#include "model/mapped_file.h"
#include "tokenizer/hf_pipeline.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace imp {

namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) { return read_regular_file(path); }

json::Value read_json(const std::string& path) { return json::parse(read_text(path), path); }

[[noreturn]] void bad(const std::string& src, const std::string& what) { throw Error(src + ": " + what); }

// `file`'s key `key`, present but not of a type the reader takes.
[[noreturn]] void wrong_type(const std::string& file, const std::string& key, const json::Value& v, const char* want) {
    bad(file, "key '" + key + "' is " + json::type_name(v) + ", expected " + want);
}

// `obj`'s key `key` when present and not null; of another kind than `kind`: an error naming the file and the key.
const json::Value* typed(const json::Value& obj, const char* key, json::Value::Kind kind, const char* want,
                         const std::string& file) {
    const json::Value* v = obj.get(key);
    if (!v || v->kind == json::Value::Kind::Null) return nullptr;
    if (v->kind != kind && !(kind == json::Value::Kind::Int && v->is_integer())) wrong_type(file, key, *v, want);
    return v;
}

// A token given as "text" or as an AddedToken object {"content": "text"} under `key`; "" if absent or null.
std::string token_field(const json::Value& obj, const char* key, const std::string& file) {
    const json::Value* v = obj.get(key);
    if (!v || v->kind == json::Value::Kind::Null) return "";
    const json::Value* c = v->is_string() ? v : v->get("content");
    if (!c || !c->is_string()) wrong_type(file, key, *v, "a string or {\"content\": string}");
    return c->s;
}

// A token given as "text" or as an AddedToken object {"content": "text", ...}; "" if absent or null.
std::string token_string(const json::Value* v) {
    if (!v) return "";
    if (v->is_string()) return v->s;
    if (const json::Value* c = v->get("content"); c && c->is_string()) return c->s;
    return "";
}

int32_t to_id(const json::Value& v, const std::string& where) {
    uint64_t u;
    if (!v.as_u64(u) || u > uint64_t(INT32_MAX)) bad(where, "token id is not a non-negative 32-bit integer");
    return int32_t(u);
}

// Decoder steps applied to one token's stored text; `strip` set when the decoder drops the leading space.
std::string decode_token(const json::Value* dec, const std::string& tok, bool* strip, const std::string& src) {
    if (!dec || dec->kind == json::Value::Kind::Null) return tok;
    const json::Value* ty = dec->get("type");
    const std::string type = ty && ty->is_string() ? ty->s : "";
    if (type == "Sequence") {
        std::string s = tok;
        if (const json::Value* list = dec->get("decoders"))
            for (const json::Value& d : list->items) s = decode_token(&d, s, strip, src);
        return s;
    }
    if (type == "ByteLevel") {
        std::string out;
        for (size_t i = 0; i < tok.size();) {
            int len = 1;
            const int b = unicode::cp_to_byte(unicode::decode_utf8(tok, i, &len));
            if (b >= 0)
                out += char(b);
            else
                out.append(tok, i, size_t(len));
            i += size_t(len);
        }
        return out;
    }
    if (type == "Replace") {
        const json::Value* p = dec->get("pattern");
        const json::Value* lit = p ? p->get("String") : nullptr;
        const json::Value* content = dec->get("content");
        if (!lit || !lit->is_string() || !content || !content->is_string() || lit->s.empty())
            bad(src, "decoder Replace: only a String pattern is supported");
        std::string out;
        size_t p0 = 0;
        for (size_t q; (q = tok.find(lit->s, p0)) != std::string::npos; p0 = q + lit->s.size())
            out.append(tok, p0, q - p0) += content->s;
        return out.append(tok, p0);
    }
    if (type == "ByteFallback") {
        auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
        if (tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>' && hex(tok[3]) >= 0 && hex(tok[4]) >= 0)
            return std::string(1, char(hex(tok[3]) * 16 + hex(tok[4])));
        return tok;
    }
    if (type == "Fuse") return tok;
    if (type == "Strip") {
        const json::Value* c = dec->get("content");
        const json::Value* start = dec->get("start");
        const json::Value* stop = dec->get("stop");
        uint64_t n0 = 0, n1 = 0;
        if (!c || !c->is_string() || c->s != " " || !start || !start->as_u64(n0) || n0 > 1 || !stop ||
            !stop->as_u64(n1) || n1 != 0)
            bad(src, "decoder Strip: only stripping one leading space is supported");
        if (n0 == 1) *strip = true;
        return tok;
    }
    if (type == "Metaspace") {
        const std::string rep = token_string(dec->get("replacement"));
        const json::Value* ps = dec->get("prepend_scheme");
        const json::Value* aps = dec->get("add_prefix_space");
        if ((ps && ps->is_string() && ps->s != "never") ||
            (!ps && aps && aps->kind == json::Value::Kind::Bool && aps->b))
            *strip = true;
        std::string out;
        size_t p0 = 0;
        for (size_t q; !rep.empty() && (q = tok.find(rep, p0)) != std::string::npos; p0 = q + rep.size())
            out.append(tok, p0, q - p0) += ' ';
        return out.append(tok, p0);
    }
    bad(src, "decoder type '" + type + "' is not supported");
}

// TemplateProcessing "single": the special tokens before and after $A.
void post_processor(const json::Value* pp, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix,
                    const std::string& src) {
    if (!pp || pp->kind == json::Value::Kind::Null) return;
    const json::Value* ty = pp->get("type");
    const std::string type = ty && ty->is_string() ? ty->s : "";
    if (type == "Sequence") {
        if (const json::Value* list = pp->get("processors"))
            for (const json::Value& p : list->items) post_processor(&p, prefix, suffix, src);
        return;
    }
    if (type == "ByteLevel") return;  // offsets only
    if (type != "TemplateProcessing") bad(src, "post_processor type '" + type + "' is not supported");
    const json::Value* single = pp->get("single");
    const json::Value* specials = pp->get("special_tokens");
    if (!single || !single->is_array()) bad(src, "post_processor TemplateProcessing has no 'single' list");
    bool after = false;
    for (const json::Value& piece : single->items) {
        if (piece.get("Sequence")) {
            after = true;
            continue;
        }
        const json::Value* st = piece.get("SpecialToken");
        const json::Value* id = st ? st->get("id") : nullptr;
        if (!id || !id->is_string()) bad(src, "post_processor: unknown template piece");
        const json::Value* tok = specials ? specials->get(id->s) : nullptr;
        const json::Value* ids = tok ? tok->get("ids") : nullptr;
        if (!ids || !ids->is_array()) bad(src, "post_processor: special token '" + id->s + "' has no ids");
        for (const json::Value& v : ids->items) (after ? suffix : prefix).push_back(to_id(v, src));
    }
}

const char* const kEogTexts[] = {"<|eot_id|>",        "<|eom_id|>", "<|im_end|>", "<|endoftext|>",
                                 "<|end_of_text|>",   "<|end|>",    "<|return|>", "<|call|>",
                                 "<end_of_turn>",     "<|EOT|>",    "<EOT>",      "<｜end▁of▁sentence｜>",
                                 "<end_of_utterance>"};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::for_model(const std::string& model_path, const Metadata& md) {
    if (md.has("tokenizer.ggml.model")) return from_metadata(md);
    const fs::path p(model_path);
    const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
    if (fs::exists(dir / "tokenizer.json")) return from_hf(dir.string());
    return nullptr;
}

std::unique_ptr<Tokenizer> Tokenizer::from_hf(const std::string& path) {
    const fs::path p(path);
    const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
    const std::string tj = fs::is_directory(p) ? (p / "tokenizer.json").string() : path;
    if (!fs::exists(tj)) throw Error(dir.string() + ": no tokenizer.json");
    const json::Value root = read_json(tj);
    const json::Value* model = root.get("model");
    if (!model || !model->is_object()) bad(tj, "missing 'model' object");
    const json::Value* mty = model->get("type");
    const std::string mtype = mty && mty->is_string() ? mty->s : "BPE";  // older files omit it
    if (mtype != "BPE") bad(tj, "model type '" + mtype + "' is not supported (only BPE)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (const json::Value* v = model->get(k); v && v->is_string() && !v->s.empty())
            bad(tj, std::string("model.") + k + " is not supported");

    std::unique_ptr<Tokenizer> t(new Tokenizer());
    t->source_ = tj;
    t->hf_ = std::make_unique<hf::Pipeline>(root.get("normalizer"), root.get("pre_tokenizer"), tj);

    // Vocab: model.vocab plus added tokens (which may lie beyond it).
    const json::Value* vocab = model->get("vocab");
    if (!vocab || !vocab->is_object()) bad(tj, "model.vocab is not an object");
    int32_t n = 0;
    for (const json::Value& v : vocab->items) n = std::max(n, to_id(v, tj + ": model.vocab") + 1);
    const json::Value* added = root.get("added_tokens");
    if (added && added->is_array())
        for (const json::Value& a : added->items)
            if (const json::Value* id = a.get("id")) n = std::max(n, to_id(*id, tj + ": added_tokens") + 1);
    t->tokens_.assign(size_t(n), "");
    t->types_.assign(size_t(n), kUnused);
    for (size_t k = 0; k < vocab->items.size(); ++k) {
        const int32_t id = to_id(vocab->items[k], tj);
        t->tokens_[size_t(id)] = vocab->keys[k];
        t->types_[size_t(id)] = kNormal;
    }
    if (added && added->is_array())
        for (const json::Value& a : added->items) {
            const std::string text = token_string(&a);
            const int32_t id = to_id(*a.get("id"), tj);
            if (text.empty()) bad(tj, "added token " + std::to_string(id) + " has no content");
            const json::Value* sp = a.get("special");
            const bool special = sp && sp->kind == json::Value::Kind::Bool && sp->b;
            auto flag = [&](const char* k) {
                const json::Value* v = a.get(k);
                return v && v->kind == json::Value::Kind::Bool && v->b;
            };
            t->tokens_[size_t(id)] = text;
            t->types_[size_t(id)] = special ? kControl : kUserDefined;
            Special s{text, id, !special};
            s.lstrip = flag("lstrip"), s.rstrip = flag("rstrip");
            t->specials_.push_back(s);
        }
    t->index_specials();

    // The BPE model. Merges: "a b" strings or [a, b] pairs.
    std::vector<std::pair<std::string, std::string>> merges;
    if (const json::Value* m = model->get("merges"); m && m->is_array()) {
        merges.reserve(m->items.size());
        for (const json::Value& e : m->items) {
            if (e.is_string()) {
                const size_t sp = e.s.size() > 1 ? e.s.find(' ', 1) : std::string::npos;
                if (sp == std::string::npos) bad(tj, "merge '" + e.s + "' has no space");
                merges.emplace_back(e.s.substr(0, sp), e.s.substr(sp + 1));
            } else if (e.is_array() && e.items.size() == 2 && e.items[0].is_string() && e.items[1].is_string()) {
                merges.emplace_back(e.items[0].s, e.items[1].s);
            } else {
                bad(tj, "model.merges entry is neither \"a b\" nor [a, b]");
            }
        }
    }
    auto mflag = [&](const char* k) {
        const json::Value* v = model->get(k);
        return v && v->kind == json::Value::Kind::Bool && v->b;
    };
    Bpe::Options o;
    o.byte_level = t->hf_->byte_level();
    o.ignore_merges = mflag("ignore_merges");
    o.byte_fallback = mflag("byte_fallback");
    o.fuse_unk = mflag("fuse_unk");
    if (const std::string unk = token_string(model->get("unk_token")); !unk.empty())
        for (size_t i = 0; i < t->tokens_.size(); ++i)
            if (t->tokens_[i] == unk) o.unk_id = int32_t(i);
    t->bpe_ = std::make_unique<Bpe>(t->tokens_, merges, o);
    if (o.byte_fallback)
        for (size_t i = 0; i < t->tokens_.size(); ++i) {
            const std::string& s = t->tokens_[i];
            if (t->types_[i] == kNormal && s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>')
                t->types_[i] = kByte;
        }

    // Decoded text of each token. Special tokens keep their text; the other added tokens go through the decoder as
    // vocabulary tokens do (Gemma's "▁▁▁▁" added tokens decode to four spaces, as in tokenizers).
    t->decoded_.resize(size_t(n));
    for (int32_t id = 0; id < n; ++id) {
        const int32_t ty = t->types_[size_t(id)];
        t->decoded_[size_t(id)] =
            ty == kControl ? t->tokens_[size_t(id)]
                           : decode_token(root.get("decoder"), t->tokens_[size_t(id)], &t->strip_leading_space_, tj);
    }
    post_processor(root.get("post_processor"), t->prefix_, t->suffix_, tj);

    // tokenizer_config.json / generation_config.json / chat_template.jinja
    auto find_id = [&](const std::string& text) -> int32_t {
        if (text.empty()) return -1;
        for (const Special& s : t->specials_)
            if (s.text == text) return s.id;
        return t->bpe_->find(text);
    };
    using Kind = json::Value::Kind;
    const fs::path cfg = dir / "tokenizer_config.json";
    if (fs::exists(cfg)) {
        const std::string cf = cfg.string();
        const json::Value c = read_json(cf);
        t->bos_ = find_id(token_field(c, "bos_token", cf));
        t->eos_ = find_id(token_field(c, "eos_token", cf));
        if (const json::Value* ct = c.get("chat_template"); ct && ct->kind != Kind::Null) {
            const char* want = "a string or a list of {\"name\", \"template\"}";
            if (ct->is_string()) {
                t->chat_template_ = ct->s;
            } else if (ct->is_array()) {
                for (const json::Value& e : ct->items) {
                    const json::Value* name = e.get("name");
                    const json::Value* body = e.get("template");
                    if (!name || !name->is_string() || !body || !body->is_string())
                        wrong_type(cf, "chat_template", e, want);
                    if (name->s == "default") t->chat_template_ = body->s;
                }
            } else {
                wrong_type(cf, "chat_template", *ct, want);
            }
            t->chat_template_source_ = cf + ": chat template";
        }
        if (const json::Value* ab = typed(c, "add_bos_token", Kind::Bool, "a bool", cf); ab && t->bos_ >= 0) {
            auto it = std::find(t->prefix_.begin(), t->prefix_.end(), t->bos_);
            if (ab->b && it == t->prefix_.end()) t->prefix_.insert(t->prefix_.begin(), t->bos_);
            if (!ab->b && it != t->prefix_.end()) t->prefix_.erase(it);
        }
        if (const json::Value* ae = typed(c, "add_eos_token", Kind::Bool, "a bool", cf);
            ae && ae->b && t->eos_ >= 0 && t->suffix_.empty())
            t->suffix_.push_back(t->eos_);
    }
    if (const fs::path jt = dir / "chat_template.jinja"; fs::exists(jt)) {
        t->chat_template_ = read_text(jt.string());
        t->chat_template_source_ = jt.string();  // errors read "<file>:<line>: ..."
    }
    if (t->eos_ >= 0) t->eog_.push_back(t->eos_);
    const fs::path gen = dir / "generation_config.json";
    if (fs::exists(gen)) {
        const std::string gf = gen.string();
        const json::Value g = read_json(gf);
        if (const json::Value* e = g.get("eos_token_id"); e && e->kind != Kind::Null) {
            if (e->is_array())
                for (const json::Value& v : e->items) t->eog_.push_back(to_id(v, gf + ": eos_token_id"));
            else if (e->is_integer())
                t->eog_.push_back(to_id(*e, gf + ": eos_token_id"));
            else
                wrong_type(gf, "eos_token_id", *e, "a token id or a list of them");
        }
        if (const json::Value* b = typed(g, "bos_token_id", Kind::Int, "a token id", gf); b && t->bos_ < 0)
            t->bos_ = to_id(*b, gf + ": bos_token_id");
        auto number = [&](const char* k) -> std::optional<double> {
            const json::Value* v = g.get(k);
            if (!v || v->kind == Kind::Null) return std::nullopt;
            if (v->kind == Kind::Float) return v->f;
            if (v->kind == Kind::Int) return double(v->i);
            if (v->kind == Kind::UInt) return double(v->u);
            wrong_type(gf, k, *v, "a number");
        };
        SamplingDefaults& sd = t->sampling_defaults_;
        sd.temperature = number("temperature");
        sd.top_p = number("top_p");
        sd.min_p = number("min_p");
        sd.repetition_penalty = number("repetition_penalty");
        if (auto k = number("top_k")) sd.top_k = int64_t(*k);
        if (const json::Value* ds = typed(g, "do_sample", Kind::Bool, "a bool", gf); ds && !ds->b)
            sd.temperature = 0.0;
    }
    for (const Special& s : t->specials_)
        for (const char* e : kEogTexts)
            if (s.text == e) t->eog_.push_back(s.id);
    for (int32_t id : t->eog_)
        if (id >= n) bad(tj, "end-of-generation id " + std::to_string(id) + " is outside the vocab");
    std::sort(t->eog_.begin(), t->eog_.end());
    t->eog_.erase(std::unique(t->eog_.begin(), t->eog_.end()), t->eog_.end());
    t->add_bos_ = !t->prefix_.empty() || !t->suffix_.empty();
    return t;
}

}  // namespace imp
