#include "model/safetensors_reader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "imp/error.h"
#include "model/display_text.h"
#include "model/hparam_bounds.h"
#include "model/json.h"

namespace imp {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;    // the safetensors reference reader's limit
constexpr uint64_t kMaxSideFileBytes = 100'000'000;  // config.json / index.json

std::string sq(const std::string& s) { return imp::quoted(s); }

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

struct Shard {
    std::vector<TensorInfo> tensors;
    std::vector<std::pair<std::string, std::string>> metadata;
};

[[noreturn]] void fail_in(const std::string& path, const std::string& msg) { throw Error(path + ": " + msg); }

// Parses and validates one .safetensors file.
Shard parse_shard(const MappedFile& f) {
    const std::string& path = f.path();
    const uint64_t fsize = f.size();
    if (fsize < 8) fail_in(path, "file of " + std::to_string(fsize) + " bytes is too small for a safetensors header");
    uint64_t n;
    std::memcpy(&n, f.data(), 8);
    if (n > kMaxHeaderBytes)
        fail_in(path, "safetensors header size " + std::to_string(n) + " exceeds the limit of " +
                          std::to_string(kMaxHeaderBytes) + " bytes");
    if (n > fsize - 8)
        fail_in(path, "safetensors header size " + std::to_string(n) + " is larger than the rest of the file (" +
                          std::to_string(fsize - 8) + " bytes)");
    const uint64_t buf_start = 8 + n;
    const uint64_t buf_size = fsize - buf_start;
    json::Value h = json::parse(std::string_view(reinterpret_cast<const char*>(f.data()) + 8, size_t(n)), path);
    if (!h.is_object()) fail_in(path, "safetensors header is not a JSON object");

    Shard out;
    out.tensors.reserve(h.items.size());
    for (size_t k = 0; k < h.items.size(); ++k) {
        const std::string& name = h.keys[k];
        const json::Value& e = h.items[k];
        if (name == "__metadata__") {
            if (!e.is_object()) fail_in(path, "__metadata__ is not a JSON object");
            for (size_t m = 0; m < e.items.size(); ++m) {
                if (!e.items[m].is_string()) fail_in(path, "__metadata__ entry " + sq(e.keys[m]) + " is not a string");
                out.metadata.emplace_back(e.keys[m], e.items[m].s);
            }
            continue;
        }
        const std::string subject = "tensor " + sq(name);
        if (!e.is_object()) fail_in(path, subject + ": header entry is not a JSON object");
        TensorInfo t;
        t.name = name;
        t.file = path;
        const json::Value* dt = e.get("dtype");
        if (!dt) fail_in(path, subject + " has no dtype");
        if (!dt->is_string()) fail_in(path, subject + " dtype is not a string");
        unsigned bits = safetensors_dtype_bits(dt->s);
        if (bits == 0) fail_in(path, subject + " has unknown dtype " + sq(dt->s));
        t.type = dt->s;
        const json::Value* sh = e.get("shape");
        if (!sh) fail_in(path, subject + " has no shape");
        if (!sh->is_array()) fail_in(path, subject + " shape is not an array");
        const std::string count_what = path + ": " + subject + " element count";
        uint64_t numel = 1;
        for (size_t d = 0; d < sh->items.size(); ++d) {
            uint64_t dim;
            if (!sh->items[d].as_u64(dim))
                fail_in(path, subject + " shape entry #" + std::to_string(d) + " is not a non-negative integer");
            if (dim > uint64_t(INT64_MAX))
                fail_in(path,
                        subject + " shape entry #" + std::to_string(d) + " = " + std::to_string(dim) + " is too large");
            numel = checked_mul(numel, dim, count_what.c_str());
            t.shape.push_back(int64_t(dim));
        }
        if (numel > uint64_t(INT64_MAX)) fail_in(path, subject + " has more elements than int64 can count");
        uint64_t nbits = checked_mul(numel, bits, count_what.c_str());
        if (nbits % 8 != 0)
            fail_in(path,
                    subject + ": " + std::to_string(numel) + " elements of " + t.type + " do not fill whole bytes");
        t.nbytes = nbits / 8;
        const json::Value* offs = e.get("data_offsets");
        if (!offs) fail_in(path, subject + " has no data_offsets");
        uint64_t begin, end;
        if (!offs->is_array() || offs->items.size() != 2) fail_in(path, subject + " data_offsets must be [begin, end]");
        if (!offs->items[0].as_u64(begin) || !offs->items[1].as_u64(end))
            fail_in(path, subject + " data_offsets entries must be non-negative integers");
        if (begin > end)
            fail_in(path, subject + " data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
        if (end - begin != t.nbytes)
            fail_in(path, subject + " data_offsets span " + std::to_string(end - begin) + " bytes but " + t.type + " " +
                              shape_str(t.shape) + " needs " + std::to_string(t.nbytes));
        if (end > buf_size)
            fail_in(path, subject + " data_offsets end " + std::to_string(end) +
                              " is past the end of the data buffer (" + std::to_string(buf_size) + " bytes)");
        t.file_offset = buf_start + begin;
        t.data = f.data() + t.file_offset;
        out.tensors.push_back(std::move(t));
    }
    std::vector<const TensorInfo*> order;
    for (const auto& t : out.tensors)
        if (t.nbytes) order.push_back(&t);
    std::sort(order.begin(), order.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->file_offset < b->file_offset; });
    for (size_t k = 1; k < order.size(); ++k)
        if (order[k - 1]->file_offset + order[k - 1]->nbytes > order[k]->file_offset)
            fail_in(path,
                    "tensors " + sq(order[k - 1]->name) + " and " + sq(order[k]->name) + " overlap in the data buffer");
    return out;
}

json::Value read_json_file(const std::string& path) {
    auto f = MappedFile::open(path);
    if (f->size() > kMaxSideFileBytes)
        throw Error(path + ": " + std::to_string(f->size()) + " bytes is too large for a JSON side file");
    json::Value v = json::parse(std::string_view(reinterpret_cast<const char*>(f->data()), size_t(f->size())), path);
    if (!v.is_object()) throw Error(path + ": top level is not a JSON object");
    return v;
}

MetaValue to_meta(const json::Value& v) {
    switch (v.kind) {
        case json::Value::Kind::Null: return {std::string("null"), "null"};
        case json::Value::Kind::Bool: return {v.b, "bool"};
        case json::Value::Kind::Int: return {v.i, "int"};
        case json::Value::Kind::UInt: return {v.u, "int"};
        case json::Value::Kind::Float: return {v.f, "float"};
        case json::Value::Kind::String: return {v.s, "str"};
        case json::Value::Kind::Object: return {json::dump(v), "json"};
        case json::Value::Kind::Array: break;
    }
    auto arr = std::make_shared<MetaArray>();
    arr->reserve(v.items.size());
    std::string elem;
    for (const auto& item : v.items) {
        arr->push_back(to_meta(item));
        std::string t = json::type_name(item);
        elem = elem.empty() || elem == t ? t : "mixed";
    }
    return {std::move(arr), "arr[" + elem + "]"};
}

// config.json -> dotted keys: {"rope_scaling": {"factor": 8.0}} becomes "rope_scaling.factor" = 8.0.
// null values are left out (absent); objects inside arrays are kept as compact JSON text.
void flatten(const json::Value& obj, const std::string& prefix, Metadata& m, const std::string& path) {
    for (size_t k = 0; k < obj.items.size(); ++k) {
        std::string key = prefix.empty() ? obj.keys[k] : prefix + "." + obj.keys[k];
        const json::Value& v = obj.items[k];
        if (v.is_object()) {
            flatten(v, key, m, path);
        } else if (v.kind != json::Value::Kind::Null) {
            if (m.has(key)) throw Error(path + ": key " + sq(key) + " appears twice once nested keys are dotted");
            m.set(key, to_meta(v));
        }
    }
}

bool is_plain_relative(const std::string& name) {
    if (name.empty() || name[0] == '/') return false;
    for (const auto& part : fs::path(name))
        if (part == "..") return false;
    return true;
}

}  // namespace

unsigned safetensors_dtype_bits(const std::string& d) {
    static const std::unordered_map<std::string, unsigned> kBits = {
        {"BOOL", 8}, {"U8", 8},   {"I8", 8},    {"F8_E4M3", 8}, {"F8_E5M2", 8}, {"F8_E8M0", 8}, {"I16", 16},
        {"U16", 16}, {"F16", 16}, {"BF16", 16}, {"I32", 32},    {"U32", 32},    {"F32", 32},    {"F64", 64},
        {"I64", 64}, {"U64", 64}, {"F4", 4},    {"F6_E2M3", 6}, {"F6_E3M2", 6},
    };
    auto it = kBits.find(d);
    return it == kBits.end() ? 0 : it->second;
}

void SafetensorsSource::add_file(std::shared_ptr<MappedFile> file) {
    Shard s = parse_shard(*file);
    for (auto& [k, v] : s.metadata) {
        std::string key = "__safetensors." + k;
        if (!meta_.has(key)) meta_.set(key, {v, "str"});
    }
    for (auto& t : s.tensors) tensors_.push_back(std::move(t));
    bytes_ += file->size();
    files_.push_back(std::move(file));
}

std::unique_ptr<SafetensorsSource> SafetensorsSource::open_file(std::shared_ptr<MappedFile> file) {
    std::unique_ptr<SafetensorsSource> src(new SafetensorsSource());
    src->path_ = file->path();
    src->meta_.source = src->path_;
    src->add_file(std::move(file));
    src->build_name_index();
    return src;
}

std::unique_ptr<SafetensorsSource> SafetensorsSource::open_folder(const std::string& dir) {
    std::unique_ptr<SafetensorsSource> src(new SafetensorsSource());
    src->path_ = dir;
    const fs::path d(dir);
    const std::string config = (d / "config.json").string();
    src->meta_.source = config;  // the hyper-parameters' file
    const std::string index = (d / "model.safetensors.index.json").string();
    const std::string single = (d / "model.safetensors").string();
    std::error_code ec;
    if (!fs::exists(config, ec)) throw Error(dir + ": no config.json (a safetensors model folder needs one)");
    json::Value cfg = read_json_file(config);

    if (fs::exists(index, ec)) {
        json::Value idx = read_json_file(index);
        const json::Value* wm = idx.get("weight_map");
        if (!wm || !wm->is_object()) throw Error(index + ": no \"weight_map\" object");
        std::vector<std::string> shard_names;    // in order of first appearance
        std::map<std::string, size_t> shard_of;  // shard name -> position
        for (size_t k = 0; k < wm->items.size(); ++k) {
            const json::Value& v = wm->items[k];
            if (!v.is_string()) throw Error(index + ": weight_map entry " + sq(wm->keys[k]) + " is not a string");
            if (!is_plain_relative(v.s))
                throw Error(index + ": shard " + sq(v.s) + " must be a relative path inside the folder");
            if (shard_of.emplace(v.s, shard_names.size()).second) shard_names.push_back(v.s);
        }
        std::unordered_map<std::string, size_t> owner;  // tensor name -> shard position
        for (size_t s = 0; s < shard_names.size(); ++s) {
            const std::string shard_path = (d / shard_names[s]).string();
            if (!fs::exists(shard_path, ec))
                throw Error(shard_path + ": shard listed in model.safetensors.index.json does not exist");
            size_t first = src->tensors_.size();
            src->add_file(MappedFile::open(shard_path));
            for (size_t t = first; t < src->tensors_.size(); ++t) {
                auto [it, fresh] = owner.emplace(src->tensors_[t].name, s);
                if (!fresh)
                    throw Error(shard_path + ": tensor " + sq(src->tensors_[t].name) + " is also in shard " +
                                sq(shard_names[it->second]));
            }
        }
        for (size_t k = 0; k < wm->items.size(); ++k) {
            auto it = owner.find(wm->keys[k]);
            size_t want = shard_of[wm->items[k].s];
            if (it == owner.end() || it->second != want)
                throw Error(index + ": tensor " + sq(wm->keys[k]) + " is mapped to shard " + sq(wm->items[k].s) +
                            " but that shard does not contain it");
        }
    } else if (fs::exists(single, ec)) {
        src->add_file(MappedFile::open(single));
    } else {
        throw Error(dir + ": no model.safetensors or model.safetensors.index.json in the folder");
    }

    flatten(cfg, "", src->meta_, config);
    // ModelOpt's quantization record, when present: "hf_quant_config.quantization.quant_algo", ... (the quant
    // formats read it normalized through read_quant_config, model/quant_config.h).
    const std::string hf_quant = (d / "hf_quant_config.json").string();
    if (fs::exists(hf_quant, ec)) flatten(read_json_file(hf_quant), "hf_quant_config", src->meta_, hf_quant);
    if (const json::Value* mt = cfg.get("model_type")) {
        if (!mt->is_string()) throw Error(config + ": model_type is not a string");
        src->arch_ = mt->s;
    }
    src->build_name_index();
    check_hparam_bounds(config, src->meta_, src->tensors_, false);
    return src;
}

}  // namespace imp
