// gguf-edit IN OUT KEY TYPE VALUE: copies a GGUF file with one metadata key set (replaced where present, else added)
// to a value of the given type (u32, i32, u64, i64, f32, f64, str, arr_u8, arr_str), or removed (TYPE delete); TYPE
// rename_tensor renames the tensor KEY to VALUE instead, leaving the metadata as it is. The tensor data is carried over unchanged, moved
// to the next aligned offset after the new header. Used by the hostile-input tests to make files a careless or
// hostile user could give imp ("block_count = 2^31-1", "rope.freq_base = nan"), without committing each one.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace {

struct In {
    const std::string& b;
    size_t pos = 0;
    void need(size_t n) const {
        if (pos + n > b.size()) throw std::runtime_error("truncated GGUF");
    }
    template <class T>
    T get() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, b.data() + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }
    std::string str() {
        uint64_t n = get<uint64_t>();
        need(size_t(n));
        std::string s = b.substr(pos, size_t(n));
        pos += size_t(n);
        return s;
    }
    // Skips one value of GGUF type `t`.
    void skip(uint32_t t) {
        static const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        if (t == 8) {
            (void)str();
        } else if (t == 9) {
            uint32_t et = get<uint32_t>();
            uint64_t n = get<uint64_t>();
            for (uint64_t i = 0; i < n; ++i) skip(et);
        } else if (t < 13) {
            need(kSize[t]);
            pos += kSize[t];
        } else {
            throw std::runtime_error("unknown GGUF type " + std::to_string(t));
        }
    }
};

template <class T>
void put(std::string& o, T v) {
    char c[sizeof(T)];
    std::memcpy(c, &v, sizeof(T));
    o.append(c, sizeof(T));
}

// The new key/value entry's type id and value bytes.
std::string encode(const std::string& key, const std::string& type, const std::string& value) {
    std::string o;
    put<uint64_t>(o, key.size());
    o += key;
    if (type == "u32") put<uint32_t>(o, 4), put<uint32_t>(o, uint32_t(std::stoul(value)));
    else if (type == "i32") put<uint32_t>(o, 5), put<int32_t>(o, int32_t(std::stol(value)));
    else if (type == "f32") put<uint32_t>(o, 6), put<float>(o, std::stof(value));
    else if (type == "str") put<uint32_t>(o, 8), put<uint64_t>(o, value.size()), o += value;
    else if (type == "u64") put<uint32_t>(o, 10), put<uint64_t>(o, std::stoull(value));
    else if (type == "i64") put<uint32_t>(o, 11), put<int64_t>(o, std::stoll(value));
    else if (type == "f64") put<uint32_t>(o, 12), put<double>(o, std::stod(value));
    else if (type == "arr_u8") {  // VALUE zero bytes
        put<uint32_t>(o, 9), put<uint32_t>(o, 0), put<uint64_t>(o, std::stoull(value));
        o.append(size_t(std::stoull(value)), '\0');
    } else if (type == "arr_str") {  // VALUE strings "t0", "t1", ...
        put<uint32_t>(o, 9), put<uint32_t>(o, 8), put<uint64_t>(o, std::stoull(value));
        for (uint64_t i = 0; i < std::stoull(value); ++i) {
            const std::string t = "t" + std::to_string(i);
            put<uint64_t>(o, t.size()), o += t;
        }
    }
    else throw std::runtime_error("unknown type " + type + " (u32, i32, u64, i64, f32, f64, str, arr_str)");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::cerr << "usage: gguf-edit IN OUT KEY TYPE VALUE\n";
        return 2;
    }
    try {
        std::ifstream f(argv[1], std::ios::binary);
        const std::string b((std::istreambuf_iterator<char>(f)), {});
        const std::string key = argv[3];
        const bool rename = std::string(argv[4]) == "rename_tensor";
        In in{b};
        if (in.get<uint32_t>() != 0x46554747u) throw std::runtime_error("not a GGUF file");
        const uint32_t version = in.get<uint32_t>();
        const uint64_t n_tensors = in.get<uint64_t>(), n_kv = in.get<uint64_t>();
        std::string kvs;
        bool replaced = false;
        uint64_t alignment = 32;
        for (uint64_t i = 0; i < n_kv; ++i) {
            const size_t start = in.pos;
            const std::string k = in.str();
            const uint32_t t = in.get<uint32_t>();
            const size_t vpos = in.pos;
            in.skip(t);
            if (k == "general.alignment" && t == 4) std::memcpy(&alignment, b.data() + vpos, 4), alignment &= 0xffffffffu;
            if (k == key && !rename) {
                if (std::string(argv[4]) != "delete") kvs += encode(key, argv[4], argv[5]);
                replaced = true;
            } else {
                kvs += b.substr(start, in.pos - start);
            }
        }
        const bool del = std::string(argv[4]) == "delete";
        if (!replaced && !del && !rename) kvs += encode(key, argv[4], argv[5]);
        std::string infos;
        bool renamed = false;
        for (uint64_t i = 0; i < n_tensors; ++i) {
            const std::string name = in.str();
            const size_t rest = in.pos;
            const uint32_t nd = in.get<uint32_t>();
            in.need(size_t(nd) * 8 + 12);
            in.pos += size_t(nd) * 8 + 12;
            const std::string out_name = rename && name == key ? argv[5] : name;
            renamed = renamed || (rename && name == key);
            put<uint64_t>(infos, out_name.size());
            infos += out_name + b.substr(rest, in.pos - rest);
        }
        if (rename && !renamed) throw std::runtime_error("no tensor named " + key);
        const size_t old_data = n_tensors ? (in.pos + alignment - 1) / alignment * alignment : in.pos;
        std::string out;
        put<uint32_t>(out, 0x46554747u);
        put<uint32_t>(out, version);
        put<uint64_t>(out, n_tensors);
        put<uint64_t>(out, rename ? n_kv : del ? n_kv - (replaced ? 1 : 0) : n_kv + (replaced ? 0 : 1));
        out += kvs;
        out += infos;
        if (n_tensors) out.append((alignment - out.size() % alignment) % alignment, '\0');
        out += b.substr(std::min(old_data, b.size()));
        std::ofstream(argv[2], std::ios::binary).write(out.data(), std::streamsize(out.size()));
    } catch (const std::exception& e) {
        std::cerr << "gguf-edit: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
