// synth-gguf: writes a valid GGUF with the real shapes of a public model and random weights, for benchmarks.
//   synth-gguf --shape llama3.1-8b --quant q4_k_m --out models/synth/llama3.1-8b.q4_k_m.gguf [--mtp] [--seed N]
//              [--threads N]
//   synth-gguf --list
// The data is generated in parallel chunks, each from its own seed (the file does not depend on the thread count),
// and written with pwrite into a temporary file that is renamed into place when complete.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blocks.h"
#include "model_plan.h"

namespace {

using synth::TensorPlan;

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: synth-gguf --shape NAME --quant q8_0|q4_k_m|bf16 --out FILE [--mtp] [--seed N] [--threads N]\n"
                 "       --mtp: append the multi-token-prediction block (qwen35moe shapes), as llama.cpp's\n"
                 "              converter does by default\n"
                 "       synth-gguf --list      shapes and what each quant writes\n");
}

template <class T>
void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
}

std::string header(const std::vector<TensorPlan>& tensors, const std::vector<synth::KeyValue>& kv) {
    std::string h = "GGUF";
    put<uint32_t>(h, 3);
    put<uint64_t>(h, tensors.size());
    put<uint64_t>(h, kv.size());
    for (const auto& e : kv) {
        put<uint64_t>(h, e.key.size());
        h += e.key;
        put<uint32_t>(h, e.type);
        h += e.value;
    }
    for (const auto& t : tensors) {
        put<uint64_t>(h, t.name.size());
        h += t.name;
        put<uint32_t>(h, uint32_t(t.ne.size()));
        for (auto d : t.ne) put<uint64_t>(h, uint64_t(d));
        put<uint32_t>(h, t.type);
        put<uint64_t>(h, t.offset);
    }
    h.resize((h.size() + 31) / 32 * 32, '\0');
    return h;
}

struct Chunk {
    size_t tensor;
    int64_t first, count;  // in blocks of the tensor's type
};

void write_all(int fd, const uint8_t* p, size_t n, uint64_t off, const std::string& path) {
    while (n > 0) {
        const ssize_t w = pwrite(fd, p, n, off_t(off));
        if (w < 0) throw std::runtime_error(path + ": write failed: " + std::strerror(errno));
        p += w;
        n -= size_t(w);
        off += uint64_t(w);
    }
}

void list_shapes() {
    std::printf("%-14s %-8s %6s %6s %5s %4s %5s %7s %7s %s\n", "shape", "arch", "embd", "layers", "heads", "kv",
                "hdim", "ff", "vocab", "tied");
    for (const auto& s : synth::shapes())
        std::printf("%-14s %-8s %6lld %6lld %5lld %4lld %5lld %7lld %7lld %s\n", s.name.c_str(), s.arch.c_str(),
                    (long long)s.n_embd, (long long)s.n_layer, (long long)s.n_head, (long long)s.n_kv,
                    (long long)s.head_dim, (long long)s.n_ff, (long long)s.n_vocab, s.tied ? "yes" : "no");
    for (const auto& s : synth::shapes())
        if (const synth::MoeShape* m = synth::find_moe(s.name))
            std::printf("%-14s experts %lld, %lld per token, expert ff %lld\n", s.name.c_str(), (long long)m->n_expert,
                        (long long)m->n_expert_used, (long long)m->n_ff_exp);
    for (const auto& s : synth::shapes())
        if (const synth::HybridShape* h = synth::find_hybrid(s.name))
            std::printf("%-14s Gated DeltaNet %lld / %lld heads x %lld, full attention every %lld, experts %lld, "
                        "%lld per token, expert ff %lld, shared ff %lld\n",
                        s.name.c_str(), (long long)h->n_k_heads, (long long)h->n_v_heads, (long long)h->head_k_dim,
                        (long long)h->full_every, (long long)h->n_expert, (long long)h->n_expert_used,
                        (long long)h->n_ff_exp, (long long)h->n_ff_shared);
    std::printf("quant: q8_0 (all matrices Q8_0), bf16 (all BF16), q4_k_m (llama.cpp Q4_K_M: Q4_K, with Q6_K for\n"
                "the LM head and for attn_v/ffn_down in the first and last eighth of the layers and every third\n"
                "between)\n");
}

int run(int argc, char** argv) {
    std::string shape_name, quant, out;
    uint64_t seed = 1;
    bool mtp = false;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--shape") shape_name = value();
        else if (a == "--quant") quant = value();
        else if (a == "--out") out = value();
        else if (a == "--seed") seed = std::stoull(value());
        else if (a == "--mtp") mtp = true;
        else if (a == "--threads") threads = unsigned(std::max(1, std::stoi(value())));
        else if (a == "--list") {
            list_shapes();
            return 0;
        } else if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            throw std::runtime_error("unknown argument '" + a + "'");
        }
    }
    if (shape_name.empty() || quant.empty() || out.empty()) {
        usage(stderr);
        throw std::runtime_error("--shape, --quant and --out are required");
    }
    const synth::Shape* shape = synth::find_shape(shape_name);
    if (!shape) {
        std::string names;
        for (const auto& s : synth::shapes()) names += (names.empty() ? "" : ", ") + s.name;
        throw std::runtime_error("unknown --shape '" + shape_name + "' (" + names + ")");
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<TensorPlan> tensors = synth::plan_tensors(*shape, quant, mtp);
    const std::string head = header(tensors, synth::make_metadata(*shape, quant, mtp));
    const TensorPlan& last = tensors.back();
    const uint64_t data_bytes = (last.offset + last.nbytes + 31) / 32 * 32;
    const uint64_t total = head.size() + data_bytes;

    // Chunks of ~4 MiB, each generated from its own seed.
    std::vector<Chunk> chunks;
    for (size_t ti = 0; ti < tensors.size(); ++ti) {
        const auto& t = tensors[ti];
        const synth::TypeInfo& info = synth::type_info(t.type);
        int64_t n = 1;
        for (auto d : t.ne) n *= d;
        const int64_t blocks = n / info.block;
        const int64_t per = t.fill == TensorPlan::Fill::Weight ? std::max<int64_t>(1, (4 << 20) / info.bytes) : blocks;
        for (int64_t b = 0; b < blocks; b += per) chunks.push_back(Chunk{ti, b, std::min(per, blocks - b)});
    }

    // A name of this process: writers of the same file at once (parallel test shards) each rename a whole file.
    const std::string tmp = out + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw std::runtime_error(tmp + ": cannot create: " + std::strerror(errno));
    try {
        if (ftruncate(fd, off_t(total)) != 0)
            throw std::runtime_error(tmp + ": cannot size to " + std::to_string(total) + " bytes: " +
                                     std::strerror(errno));
        write_all(fd, reinterpret_cast<const uint8_t*>(head.data()), head.size(), 0, tmp);
        std::atomic<size_t> next{0};
        std::string error;
        std::atomic<bool> failed{false};
        auto worker = [&] {
            std::vector<uint8_t> buf;
            try {
                for (size_t c = next++; c < chunks.size() && !failed; c = next++) {
                    const Chunk& ch = chunks[c];
                    const TensorPlan& t = tensors[ch.tensor];
                    const synth::TypeInfo& info = synth::type_info(t.type);
                    buf.resize(size_t(ch.count * info.bytes));
                    synth::Rng rng(seed ^ (uint64_t(ch.tensor) << 40) ^ uint64_t(ch.first) * 0x9E3779B97F4A7C15ull);
                    if (t.fill == TensorPlan::Fill::Weight)
                        synth::fill_weights(t.type, buf.data(), ch.count * info.block, rng);
                    else if (t.fill == TensorPlan::Fill::Norm)
                        synth::fill_norm(reinterpret_cast<float*>(buf.data()), ch.count, rng);
                    else
                        std::memcpy(buf.data(), t.values.data(), buf.size());
                    write_all(fd, buf.data(), buf.size(), head.size() + t.offset + uint64_t(ch.first * info.bytes),
                              tmp);
                }
            } catch (const std::exception& e) {
                if (!failed.exchange(true)) error = e.what();
            }
        };
        std::vector<std::thread> pool;
        for (unsigned i = 0; i < threads; ++i) pool.emplace_back(worker);
        for (auto& th : pool) th.join();
        if (failed) throw std::runtime_error(error);
        if (::close(fd) != 0) throw std::runtime_error(tmp + ": close failed: " + std::strerror(errno));
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    if (std::rename(tmp.c_str(), out.c_str()) != 0)
        throw std::runtime_error(out + ": cannot rename from " + tmp + ": " + std::strerror(errno));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("synth-gguf: wrote %s (%s %s, %zu tensors, %.2f GiB) in %.1f s (%.2f GiB/s, %u threads)\n",
                out.c_str(), shape->name.c_str(), quant.c_str(), tensors.size(), double(total) / double(1ull << 30),
                s, double(total) / double(1ull << 30) / s, threads);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "synth-gguf: error: %s\n", e.what());
        return 1;
    }
}
