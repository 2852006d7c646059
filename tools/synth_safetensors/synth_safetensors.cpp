// synth-safetensors: writes a Hugging Face safetensors folder with the real names, shapes, dtypes and quantization
// layout of a public checkpoint (ModelOpt NVFP4 / MIXED_PRECISION, compressed-tensors NVFP4) and random weights,
// for benchmarks and load tests:
//   synth-safetensors --shape qwen3.6-35b-a3b-nvfp4 --out DIR [--seed N] [--threads N] [--shard-gb G]
//   synth-safetensors --list
// Shards model-0000i-of-0000n.safetensors (+ model.safetensors.index.json when more than one), config.json,
// hf_quant_config.json (ModelOpt), tokenizer.json. Data is drawn in parallel 4 KiB blocks, each from its own seed
// (the files do not depend on the thread count), and written with pwrite into DIR.tmp.PID, renamed to DIR when whole
// (DIR must not exist, or be an empty folder).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fill.h"
#include "layout.h"
#include "tokenizer_json.h"

namespace fs = std::filesystem;
using namespace synth_st;

namespace {
// The suffix of the files being written: this process's, so that writers of the same folder at once (parallel test
// shards) each rename whole files of their own.
std::string tmp_suffix() { return ".tmp." + std::to_string(::getpid()); }

struct Placed {
    const Tensor* t;
    uint64_t seed, offset;  // offset inside the shard's data buffer
};

struct Shard {
    std::string name;
    std::vector<Placed> tensors;
    uint64_t data_bytes = 0;
    std::string header;  // 8-byte length + JSON, padded to 8
};

uint64_t elem(const Tensor& t) { return t.dtype == "F32" ? 4 : t.dtype == "BF16" ? 2 : 1; }

std::string shape_json(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

std::vector<Shard> plan_shards(const std::vector<Tensor>& ts, uint64_t shard_bytes, uint64_t seed) {
    std::vector<Shard> shards(1);
    for (size_t i = 0; i < ts.size(); ++i) {
        if (shards.back().data_bytes > 0 && shards.back().data_bytes + ts[i].bytes() > shard_bytes) shards.emplace_back();
        shards.back().tensors.push_back({&ts[i], seed * 1000003ull + i, 0});
        shards.back().data_bytes += ts[i].bytes();
    }
    const size_t n = shards.size();
    for (size_t s = 0; s < n; ++s) {
        char name[64];
        if (n == 1) std::snprintf(name, sizeof name, "model.safetensors");
        else std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, n);
        Shard& sh = shards[s];
        sh.name = name;
        // Larger elements first, so every tensor starts at a multiple of its element size.
        std::stable_sort(sh.tensors.begin(), sh.tensors.end(),
                         [](const Placed& a, const Placed& b) { return elem(*a.t) > elem(*b.t); });
        std::string j = "{\"__metadata__\": {\"format\": \"pt\"}";
        uint64_t off = 0;
        for (auto& p : sh.tensors) {
            p.offset = off;
            j += ", \"" + p.t->name + "\": {\"dtype\": \"" + p.t->dtype + "\", \"shape\": " + shape_json(p.t->shape) +
                 ", \"data_offsets\": [" + std::to_string(off) + ", " + std::to_string(off + p.t->bytes()) + "]}";
            off += p.t->bytes();
        }
        j += "}";
        while (j.size() % 8) j += ' ';
        const uint64_t len = j.size();
        sh.header.assign(reinterpret_cast<const char*>(&len), 8);
        sh.header += j;
    }
    return shards;
}

void write_text(const fs::path& p, const std::string& s) {
    std::ofstream f(p.string() + tmp_suffix(), std::ios::binary);
    f << s;
    f.close();
    if (!f) throw std::runtime_error("cannot write " + p.string());
    fs::rename(p.string() + tmp_suffix(), p);
}

// All shards' data, in 16 MiB jobs over every tensor, by `threads` workers.
void write_data(const fs::path& dir, const std::vector<Shard>& shards, int threads) {
    struct Job {
        int fd;
        const Placed* p;
        uint64_t base, begin, n;
    };
    std::vector<int> fds;
    std::vector<Job> jobs;
    constexpr uint64_t kJob = 16ull << 20;
    for (const auto& sh : shards) {
        const std::string tmp = (dir / (sh.name + tmp_suffix())).string();
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) throw std::runtime_error("cannot create " + tmp + ": " + std::strerror(errno));
        fds.push_back(fd);
        if (::pwrite(fd, sh.header.data(), sh.header.size(), 0) != ssize_t(sh.header.size()))
            throw std::runtime_error("write failed: " + tmp);
        for (const auto& p : sh.tensors)
            for (uint64_t b = 0; b < p.t->bytes(); b += kJob)
                jobs.push_back({fd, &p, sh.header.size() + p.offset, b, std::min(kJob, p.t->bytes() - b)});
    }
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            std::vector<uint8_t> buf(kJob);
            for (size_t j; !failed && (j = next++) < jobs.size();) {
                const Job& job = jobs[j];
                fill_bytes(*job.p->t, job.p->seed, job.begin, job.n, buf.data());
                uint64_t done = 0;
                while (done < job.n) {
                    const ssize_t w = ::pwrite(job.fd, buf.data() + done, job.n - done, off_t(job.base + job.begin + done));
                    if (w <= 0) {
                        failed = true;
                        break;
                    }
                    done += uint64_t(w);
                }
            }
        });
    for (auto& t : pool) t.join();
    for (int fd : fds) ::close(fd);
    if (failed) throw std::runtime_error("writing the shards failed (disk full?)");
    for (const auto& sh : shards) fs::rename(dir / (sh.name + tmp_suffix()), dir / sh.name);
}

int run(int argc, char** argv) {
    std::string shape, out;
    uint64_t seed = 1;
    int threads = int(std::max(1u, std::thread::hardware_concurrency()));
    double shard_gb = 5.0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--shape") shape = val();
        else if (a == "--out") out = val();
        else if (a == "--seed") seed = std::stoull(val());
        else if (a == "--threads") threads = std::max(1, std::stoi(val()));
        else if (a == "--shard-gb") shard_gb = std::stod(val());
        else if (a == "--list") {
            for (const auto& n : shape_names()) {
                const Checkpoint c = make_checkpoint(n);
                uint64_t b = 0;
                for (const auto& t : c.tensors) b += t.bytes();
                std::printf("%-26s %8zu tensors %9.2f GB\n", n.c_str(), c.tensors.size(), double(b) / 1e9);
            }
            return 0;
        } else {
            std::fprintf(stderr,
                         "usage: synth-safetensors --shape NAME --out DIR [--seed N] [--threads N] [--shard-gb G]\n"
                         "       synth-safetensors --list\n");
            return a == "-h" || a == "--help" ? 0 : 2;
        }
    }
    if (shape.empty() || out.empty()) throw std::runtime_error("--shape and --out are required (see --help)");
    const auto t0 = std::chrono::steady_clock::now();
    const Checkpoint c = make_checkpoint(shape);
    // The folder is written whole beside OUT, then renamed to it: a run that is killed part way leaves no OUT behind
    // (a half-written folder at OUT would pass for a model to anything that checks only that it exists).
    fs::path final_dir(out);
    if (final_dir.filename().empty()) final_dir = final_dir.parent_path();  // "dir/" names dir
    if (fs::exists(final_dir) && !(fs::is_directory(final_dir) && fs::is_empty(final_dir)))
        throw std::runtime_error(final_dir.string() + " already exists (and is not an empty folder): remove it first");
    if (!final_dir.parent_path().empty()) fs::create_directories(final_dir.parent_path());
    const fs::path dir(final_dir.string() + tmp_suffix());
    fs::remove_all(dir);
    fs::create_directories(dir);
    const auto shards = plan_shards(c.tensors, uint64_t(shard_gb * 1e9), seed);
    uint64_t total = 0;
    for (const auto& t : c.tensors) total += t.bytes();
    try {
        write_data(dir, shards, threads);
        if (shards.size() > 1) {
            std::string idx = "{\"metadata\": {\"total_size\": " + std::to_string(total) + "}, \"weight_map\": {";
            bool first = true;
            for (const auto& sh : shards)
                for (const auto& p : sh.tensors) {
                    idx += std::string(first ? "" : ", ") + "\"" + p.t->name + "\": \"" + sh.name + "\"";
                    first = false;
                }
            write_text(dir / "model.safetensors.index.json", idx + "}}\n");
        }
        write_text(dir / "config.json", c.config_json + "\n");
        if (!c.hf_quant_json.empty()) write_text(dir / "hf_quant_config.json", c.hf_quant_json + "\n");
        write_text(dir / "tokenizer.json", tokenizer_json(c.tokenizer_vocab, c.special_tokens));
        if (fs::exists(final_dir)) fs::remove(final_dir);  // the empty folder checked above
        fs::rename(dir, final_dir);
    } catch (...) {  // a failed write (disk full) leaves no temporary folder of many GB behind
        std::error_code ec;
        fs::remove_all(dir, ec);
        throw;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %zu tensors, %zu shard(s), %.2f GB in %.1f s (%.2f GB/s) -> %s\n", shape.c_str(),
                c.tensors.size(), shards.size(), double(total) / 1e9, s, double(total) / 1e9 / s, out.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "synth-safetensors: error: %s\n", e.what());
        return 1;
    }
}
