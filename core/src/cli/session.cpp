#include "cli/session.h"

#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "exec/cpu/cpu_executor.h"
#include "exec/cuda/cuda_executor.h"
#include "imp/error.h"
#include "util/core_settings.h"

namespace imp {

namespace {
int cores_present() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return int(std::max(1u, std::thread::hardware_concurrency()));
}
}  // namespace

int cpu_threads(int requested) {
    const int cores = cores_present();
    if (requested > cores) {
        // More workers than cores only time-slice one another (4096 threads on 2 cores ran for minutes).
        spdlog::warn("runtime.threads = {} is more than the {} cores this process may use; using {}", requested,
                     cores, cores);
        return cores;
    }
    return requested;
}

std::unique_ptr<Executor> make_executor(const Profile::Runtime& rt, const CoreSettings& cs) {
    // "auto": the first CUDA GPU when there is one, else the CPU. "cuda" without a GPU is an error (from
    // CudaExecutor, naming what the driver said).
    if (rt.executor == "cuda" || (rt.executor == "auto" && cuda_device_count() > 0)) {
        CudaOptions co;
        co.pdl = cs.pdl;
        co.attention.tensor_cores = cs.attention_mma;
        co.attention.tensor_cores_f8 = cs.attention_mma_fp8;
        co.attention.decode_split = cs.decode_attention == "split";
        co.attention.decode_hd256 = cs.decode_attention_hd256;
        co.attention.decode_mma_rows = cs.decode_attention_mma_rows;
        co.attention.tensor_cores_hd256 = cs.attention_mma_hd256;
        co.moe.router_cluster = cs.router_cluster;
        co.moe.router_warps = cs.router_warps;
        co.moe.router_wide = cs.router_wide;
        return std::make_unique<CudaExecutor>(0, co);
    }
    return std::make_unique<CpuExecutor>(cpu_threads(rt.threads));
}


DType kv_dtype_for(const std::string& name, const Executor& ex) {
    if (name == "f32") return DType::F32;
    if (name == "bf16") return DType::BF16;
    if (name == "fp8") return DType::F8_E4M3;
    if (name == "auto") return ex.kind() == DeviceKind::CPU ? DType::F32 : DType::BF16;
    throw Error("runtime.kv_dtype: unknown value '" + name + "'");
}

Session::Session(const Profile& p, Mode mode) {
    reg_ = std::make_unique<Registry>();
    loader_ = std::make_unique<PluginLoader>(*reg_, plugin_search_dirs(p.plugins.paths));
    src_ = open_model(p.model.path);
    const std::string arch = src_->architecture();
    if (arch.empty()) throw Error(src_->path() + ": " + no_arch_message(arch, *loader_));

    if (!p.plugins.load.empty()) {
        for (const auto& name : p.plugins.load) {
            std::string path;
            try {
                path = loader_->find(name);
            } catch (const Error& e) {
                throw Error(p.where("plugins.load") + ": key 'plugins.load': " + e.what());
            }
            loader_->load_file(path);
        }
    } else {
        // No [plugins] list (imp --model FILE): the arch plugin that provides this architecture, plus every
        // quant plugin found, as a llama.cpp user expects the file alone to be enough.
        const std::string ap = loader_->plugin_for_architecture(arch);
        if (ap.empty()) throw Error(src_->path() + ": " + no_arch_message(arch, *loader_));
        loader_->load(ap);
        for (const auto& f : loader_->scan())
            if (f.info && f.info->kind == PluginKind::Quant) loader_->load_file(f.path);
    }
    if (!reg_->find_arch(*src_)) throw Error(src_->path() + ": " + no_arch_message(arch, *loader_));
    apply_plugin_settings(p, *reg_);
    const CoreSettings cs = core_settings(*reg_);

    try {
        ex_ = make_executor(p.runtime, cs);
    } catch (const Error& e) {  // "cuda: no CUDA device found (...)": say which key asked for it, and where
        if (p.runtime.executor != "cuda") throw;
        throw Error(p.where("runtime.executor") + ": key 'runtime.executor' is \"cuda\": " + e.what());
    }
    spdlog::info("executor: {}", ex_->name());
    EngineOptions eo;
    eo.max_seq_len = p.runtime.max_seq_len;
    eo.prefill_chunk = p.runtime.prefill_chunk;
    eo.kv_dtype = kv_dtype_for(p.runtime.kv_dtype, *ex_);
    eo.cuda_graphs = p.runtime.cuda_graphs;
    eo.max_seqs = p.runtime.max_seqs;
    eo.kv_blocks = p.runtime.kv_blocks;
    eo.formats = p.model.formats;
    eo.formats_where = p.where("model.formats");
    eo.fuse_weights = cs.fuse_weights;
    eo.l2_prefetch = cs.l2_prefetch;
    eo.prefix_cache = mode == Mode::Serve && p.server.prefix_cache;
    if (mode == Mode::Plan) {
        plan_ = std::make_unique<EnginePlan>(Engine::preflight(*src_, *reg_, *ex_, eo));
        return;
    }
    engine_ = std::make_unique<Engine>(*src_, *reg_, *ex_, eo);
    const MemoryPlan& mp = engine_->plan();
    spdlog::info("weights {:.2f} GiB ({} fused matrices), KV/state {:.2f} GiB", double(mp.weights) / (1 << 30),
                 mp.fused, double(mp.state) / (1 << 30));
    tok_ = Tokenizer::for_model(p.model.path, src_->metadata());
    if (tok_) {
        const ModelDesc& d = engine_->desc();
        tok_->check_fits(d.n_vocab, "rows of tensor '" + d.tok_embd + "' in " + src_->path());
    }
}

const Tokenizer& Session::tokenizer() const {
    if (!tok_)
        throw Error(src_->path() +
                    ": the model carries no tokenizer (no tokenizer.ggml.* metadata, no tokenizer.json beside it)");
    return *tok_;
}

Session::~Session() {
    engine_.reset();  // layers and weights (plugin code) go before the executor's memory
    ex_.reset();
}

}  // namespace imp
