#include "runtime/engine.h"

#include <algorithm>
#include <string>

#include "imp/dtype.h"
#include "imp/error.h"
#include "imp/quant_format.h"
#include "model/display_text.h"
#include "runtime/engine_impl.h"
#include "runtime/layer_name.h"

namespace imp {

void Engine::Impl::allocate_runtime() {
    const int64_t n_embd = desc.n_embd, n_vocab = desc.n_vocab;
    const uint64_t kv_es = dtype_size(opt.kv_dtype);
    const int64_t n_blocks = plan.kv_blocks;
    for (size_t i = 0; i < desc.layers.size(); ++i) {
        const StateSpec st = desc.layers[i]->state();
        KVCacheView v;
        StateView sv;
        const std::string tag = layer_label(*desc.layers[i], i);
        if (st.kind == StateSpec::Kind::KV) {
            const uint64_t block_bytes = uint64_t(kKvBlock) * uint64_t(st.n_kv_heads) * uint64_t(st.head_dim) * kv_es;
            const uint64_t bytes = checked_mul(uint64_t(n_blocks), block_bytes, "KV cache");
            v.k = ex.alloc(bytes, (tag + " kv.k").c_str());
            v.v = ex.alloc(bytes, (tag + " kv.v").c_str());
            ex.fill_zero(v.k, block_bytes);  // block 0: the zero block padding rows and unused table entries read
            ex.fill_zero(v.v, block_bytes);
            v.dtype = opt.kv_dtype;
            v.n_blocks = n_blocks;
            v.n_kv_heads = st.n_kv_heads;
            v.head_dim = st.head_dim;
            v.block_size = kKvBlock;
        } else if (st.kind == StateSpec::Kind::Recurrent && st.slot_bytes() > 0) {
            sv.slot_bytes = st.slot_bytes();
            sv.n_slots = opt.max_seqs + 1;  // the last one takes padding rows
            const uint64_t bytes = checked_mul(sv.slot_bytes, uint64_t(sv.n_slots), "recurrent state");
            sv.base = ex.alloc(bytes, (tag + " state").c_str());
            ex.fill_zero(sv.base, bytes);
        }
        kv.push_back(v);
        state.push_back(sv);
    }
    const int64_t norm_rows = std::max<int64_t>(lm_rows, seq_rows);
    hidden = static_cast<float*>(ex.alloc(size_t(rows * n_embd) * 4, "hidden"));
    normed = static_cast<float*>(ex.alloc(size_t(norm_rows * n_embd) * 4, "normed"));
    logits_tmp = static_cast<float*>(ex.alloc(size_t(lm_rows * n_vocab) * 4, "logits"));
    final_logits = static_cast<float*>(ex.alloc(size_t(seq_rows) * size_t(n_vocab) * 4, "final logits"));
    host_meta.assign(meta_ints(), 0);
    meta = static_cast<int32_t*>(ex.alloc(host_meta.size() * 4, "step metadata"));
    recent = static_cast<int32_t*>(ex.alloc(size_t(seq_rows) * kMaxRecent * 4, "recent tokens"));
    sampled = static_cast<int32_t*>(ex.alloc(size_t(seq_rows) * 4, "sampled tokens"));
    scratch = static_cast<float*>(ex.alloc(std::max<uint64_t>(plan.scratch, 64), "scratch"));
}

void Engine::Impl::zero_state(SeqId id) {
    for (const auto& sv : state)
        if (sv.base) ex.fill_zero(static_cast<uint8_t*>(sv.base) + uint64_t(id) * sv.slot_bytes, sv.slot_bytes);
}

void Engine::Impl::prepare() {
    const Arch* arch = reg.find_arch(src);
    if (!arch) {
        std::string names;
        for (const auto* a : reg.archs())
            for (const auto& s : a->architectures()) names += (names.empty() ? "" : ", ") + s;
        throw Error(src.path() + ": no loaded plugin handles architecture " + quoted(src.architecture()) +
                    " (loaded architectures: " + (names.empty() ? "none" : names) + ")");
    }
    desc = arch->build(src, reg);
    if (desc.n_vocab <= 0 || desc.n_embd <= 0 || desc.layers.empty())
        throw Error(src.path() + ": arch '" + arch->name() + "' built an empty model (n_vocab " +
                    std::to_string(desc.n_vocab) + ", n_embd " + std::to_string(desc.n_embd) + ", " +
                    std::to_string(desc.layers.size()) + " layers)");
    // Registered ops the layers call: each must have a kernel this executor can run, checked before any upload.
    for (size_t i = 0; i < desc.layers.size(); ++i) {
        const std::string missing = reg.check_ops(desc.layers[i]->required_ops(), ex);
        if (!missing.empty())
            throw Error(src.path() + ": " + layer_label(*desc.layers[i], i) + ": " + missing);
    }
    if (opt.max_seq_len < 0) throw Error("max_seq_len must be >= 0, got " + std::to_string(opt.max_seq_len));
    capacity = opt.max_seq_len > 0 ? opt.max_seq_len : desc.n_ctx_train > 0 ? std::min<int64_t>(desc.n_ctx_train, 8192)
                                                                             : 8192;
    if (opt.prefill_chunk <= 0) throw Error("prefill_chunk must be positive, got " + std::to_string(opt.prefill_chunk));
    if (opt.max_seqs <= 0 || opt.max_seqs > 4096)
        throw Error("max_seqs must be in 1..4096, got " + std::to_string(opt.max_seqs));
    if (opt.kv_blocks < 0) throw Error("kv_blocks must be >= 0, got " + std::to_string(opt.kv_blocks));
    if (capacity > INT32_MAX) throw Error("max_seq_len " + std::to_string(capacity) + " exceeds 2^31 - 1");
    chunk = std::min(opt.prefill_chunk, capacity * opt.max_seqs);
    lm_rows = std::min(chunk, kLmHeadRows);
    seq_rows = 1;
    while (seq_rows < opt.max_seqs) seq_rows *= 2;
    rows = std::max<int64_t>(chunk, seq_rows);
    const int64_t blocks_per_seq = (capacity + kKvBlock - 1) / kKvBlock;
    plan.kv_blocks = (opt.kv_blocks > 0 ? opt.kv_blocks : checked_mul(uint64_t(blocks_per_seq), uint64_t(opt.max_seqs),
                                                                      "KV blocks")) + 1;
    if (plan.kv_blocks > INT32_MAX / kKvBlock)
        throw Error((opt.kv_blocks > 0 ? "runtime.kv_blocks " + std::to_string(opt.kv_blocks)
                                       : "runtime.max_seq_len " + std::to_string(capacity) + " x runtime.max_seqs " +
                                             std::to_string(opt.max_seqs)) +
                    ": a KV pool of " + std::to_string(plan.kv_blocks) + " blocks of " + std::to_string(kKvBlock) +
                    " positions is more than the " + std::to_string(INT32_MAX / kKvBlock) +
                    " its 32-bit slot ids address");
    // Prefix caching shares KV blocks; a recurrent state cannot be resumed from a prefix, so models with one run
    // every prompt whole.
    bool recurrent = false;
    for (const auto& l : desc.layers) recurrent = recurrent || l->state().kind == StateSpec::Kind::Recurrent;
    seqs.emplace(opt.max_seqs, capacity, plan.kv_blocks, kKvBlock, opt.prefix_cache && !recurrent);

    // The memory plan, before anything is allocated.
    PlanOptions po;
    po.fuse = opt.fuse_weights;
    po.formats = opt.formats;
    po.formats_where = opt.formats_where;
    po.max_tokens = rows;
    po.compute_capability = device_compute_capability(ex);
    lp = plan_weights(src, reg, ex, desc, po);
    plan.weights = lp->weight_bytes;
    plan.fused = lp->fused;
    const uint64_t kv_es = dtype_size(opt.kv_dtype);
    for (const auto& l : desc.layers) {
        const StateSpec st = l->state();
        if (st.kind == StateSpec::Kind::KV) {
            if (st.n_kv_heads <= 0 || st.head_dim <= 0)
                throw Error(l->kind() + ": KV state with " + std::to_string(st.n_kv_heads) + " heads of dim " +
                            std::to_string(st.head_dim));
            plan.state += 2 * round64(checked_mul(uint64_t(plan.kv_blocks) * kKvBlock * uint64_t(st.n_kv_heads),
                                                  uint64_t(st.head_dim) * kv_es, "KV cache"));
        } else if (st.kind == StateSpec::Kind::Recurrent) {
            plan.state += round64(checked_mul(st.slot_bytes(), uint64_t(opt.max_seqs + 1), "recurrent state"));
        }
        plan.scratch = std::max<uint64_t>(plan.scratch, uint64_t(l->scratch_floats(rows)) * 4);
    }
    plan.scratch = round64(plan.scratch);
    const int64_t norm_rows = std::max<int64_t>(lm_rows, seq_rows);
    const uint64_t meta_bytes = uint64_t(meta_ints()) * 4;
    plan.activations = round64(uint64_t(rows * desc.n_embd) * 4) + round64(uint64_t(norm_rows * desc.n_embd) * 4) +
                       round64(uint64_t(lm_rows * desc.n_vocab) * 4) +
                       round64(uint64_t(seq_rows) * uint64_t(desc.n_vocab) * 4) + round64(meta_bytes) +
                       round64(uint64_t(seq_rows) * kMaxRecent * 4) + round64(uint64_t(seq_rows) * 4);
}

void Engine::Impl::build() {
    prepare();
    // Admission: the plan must fit before anything is uploaded.
    const uint64_t avail = ex.available_bytes();
    if (plan.total() > avail)
        throw Error(src.path() + ": the model does not fit on " + ex.name() + ": needs " + human_bytes(plan.total()) +
                    " (weights " + human_bytes(plan.weights) + ", KV/state " + human_bytes(plan.state) +
                    (opt.kv_blocks > 0 ? " for runtime.kv_blocks " + std::to_string(opt.kv_blocks)
                                       : " for runtime.max_seq_len " + std::to_string(capacity) +
                                             " x runtime.max_seqs " + std::to_string(opt.max_seqs)) +
                    ", activations " + human_bytes(plan.activations) + ", scratch " + human_bytes(plan.scratch) +
                    ") but " + human_bytes(avail) + " is free; lower " +
                    (opt.kv_blocks > 0 ? "runtime.kv_blocks" : "runtime.max_seq_len or runtime.max_seqs") +
                    ", or use runtime.kv_dtype = \"fp8\"");
    load_weights(src, *lp, ex, weights);
    // One workspace for every matmul (e.g. dequantized tiles), sized for the largest pass.
    uint64_t ws = 0;
    for (const auto& [name, w] : weights.matrices)
        ws = std::max({ws, w->workspace_bytes(rows), w->workspace_bytes(lm_rows), w->workspace_bytes(seq_rows)});
    ws = std::max<uint64_t>(ws, lp->workspace_bytes);  // the formats' plans and the loaded expert stacks
    if (ws) ex.reserve_workspace(ws);
    plan.scratch += round64(ws);
    allocate_runtime();
    for (auto& l : desc.layers) l->bind(weights);
    tok_embd = weights.matrix(desc.tok_embd);
    output = weights.matrix(desc.output);
    output_norm = weights.vector(desc.output_norm);
    lp.reset();  // the requests point into the file's tensor table; nothing reads them after the upload
}

Engine::Engine(const ModelSource& src, const Registry& reg, Executor& ex, const EngineOptions& opt)
    : impl_(std::make_unique<Impl>(src, reg, ex, opt)) {
    impl_->build();
}

Engine::~Engine() = default;

const ModelDesc& Engine::desc() const { return impl_->desc; }
const MemoryPlan& Engine::plan() const { return impl_->plan; }
const std::vector<LoadPhase>& Engine::load_phases() const { return impl_->weights.load_phases; }
int64_t Engine::capacity() const { return impl_->capacity; }
int Engine::max_seqs() const { return impl_->opt.max_seqs; }
bool Engine::graphs_active() const { return !impl_->decode_graphs.empty(); }
int64_t Engine::free_kv_blocks() const { return impl_->seqs->free_blocks(); }

SeqId Engine::add_sequence() {
    const SeqId id = impl_->seqs->add();
    impl_->zero_state(id);
    return id;
}

void Engine::release_sequence(SeqId id) {
    impl_->seqs->release(id);
    if (id == impl_->single) impl_->single = -1;
}

int64_t Engine::position(SeqId id) const { return impl_->seqs->position(id); }

int64_t Engine::attach_prefix(SeqId id, std::span<const int32_t> prompt, uint64_t salt) {
    return impl_->seqs->attach_prefix(id, prompt.data(), int64_t(prompt.size()), salt);
}
bool Engine::prefix_cache() const { return impl_->seqs->prefix_cache(); }

void Engine::copy_state(SeqId from, SeqId to) {
    Impl& m = *impl_;
    if (!m.seqs->valid(from) || !m.seqs->valid(to))
        throw Error("copy_state: unknown sequence id " + std::to_string(m.seqs->valid(from) ? to : from));
    if (from == to) return;
    for (const auto& sv : m.state)
        if (sv.base)
            m.ex.copy(static_cast<uint8_t*>(sv.base) + uint64_t(to) * sv.slot_bytes,
                      static_cast<const uint8_t*>(sv.base) + uint64_t(from) * sv.slot_bytes, sv.slot_bytes);
}

void Engine::step(std::span<const SeqWork> work, float* logits) { impl_->run_step(work, logits, false); }

void Engine::sample(std::span<const SeqSample> rows, int32_t* out) {
    Impl& m = *impl_;
    if (m.last_items == 0) throw Error("sample: no logits yet (run a step first)");
    if (int64_t(rows.size()) != m.last_items)
        throw Error("sample: " + std::to_string(rows.size()) + " rows for the " + std::to_string(m.last_items) +
                    " sequences of the last step");
    // The rows' recent tokens packed one after another (each at most kMaxRecent), uploaded in one copy.
    std::vector<SampleRow> host(rows.size());
    std::vector<int32_t> packed;
    for (size_t i = 0; i < rows.size(); ++i) {
        const int64_t n_recent = std::clamp<int64_t>(rows[i].n_recent, 0, kMaxRecent);
        host[i] = SampleRow{rows[i].params, rows[i].step, int64_t(packed.size()), n_recent};
        // The most recent tokens are the last n_recent of the given history.
        if (n_recent)
            packed.insert(packed.end(), rows[i].recent + (rows[i].n_recent - n_recent), rows[i].recent + rows[i].n_recent);
    }
    if (!packed.empty()) m.ex.upload(m.recent, packed.data(), packed.size() * 4);
    m.ex.sample(m.final_logits, m.desc.n_vocab, int64_t(rows.size()), m.desc.n_vocab, host.data(), m.recent,
                m.sampled);
    m.ex.download(out, m.sampled, rows.size() * 4);
}

int Engine::capture_decode_graphs() { return impl_->capture_buckets(); }

void Engine::last_logits(std::span<const int> items, float* out) const {
    const Impl& m = *impl_;
    const size_t V = size_t(m.desc.n_vocab);
    for (size_t i = 0; i < items.size();) {
        if (items[i] < 0 || items[i] >= m.last_items)
            throw Error("last_logits: item " + std::to_string(items[i]) + " of a step of " +
                        std::to_string(m.last_items) + " sequences");
        size_t e = i + 1;  // a run of consecutive items is one copy
        while (e < items.size() && items[e] == items[e - 1] + 1 && items[e] < m.last_items) ++e;
        m.ex.download(out + i * V, m.final_logits + size_t(items[i]) * V, (e - i) * V * 4);
        i = e;
    }
}

int64_t Engine::position() const { return impl_->single < 0 ? 0 : impl_->seqs->position(impl_->single); }

void Engine::reset() {
    Impl& m = *impl_;
    if (m.single >= 0) release_sequence(m.single);
    m.last_items = 0;
}

void Engine::forward(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
    Impl& m = *impl_;
    if (n < 0) throw Error("forward: negative token count " + std::to_string(n));
    if (n == 0) return;
    if (m.single < 0) m.single = add_sequence();
    const SeqWork w{m.single, tokens, n};
    m.run_step(std::span<const SeqWork>(&w, 1), logits, all_logits);
}

int32_t Engine::sample(const SamplingParams& p, uint64_t step, const int32_t* recent, int64_t n_recent) {
    const SeqSample row{p, step, recent, n_recent};
    int32_t t = -1;
    sample(std::span<const SeqSample>(&row, 1), &t);
    return t;
}

}  // namespace imp
