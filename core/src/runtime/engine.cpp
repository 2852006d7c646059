#include "runtime/engine.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "imp/dtype.h"
#include "imp/error.h"
#include "imp/quant_format.h"
#include "runtime/load_plan.h"

namespace imp {

namespace {

constexpr int64_t kLmHeadRows = 32;  // tokens per LM-head matmul when all logits are requested
constexpr int64_t kKvBlock = 16;     // KV cache page size (positions)
constexpr int64_t kMaxRecent = 1024; // most tokens the repetition penalty looks back at

}  // namespace

struct Engine::Impl {
    const ModelSource& src;
    const Registry& reg;
    Executor& ex;
    EngineOptions opt;
    ModelDesc desc;
    MemoryPlan plan;
    Weights weights;
    int64_t capacity = 0, pos = 0, chunk = 0, lm_rows = 0;
    std::vector<KVCacheView> kv;          // per layer (empty view for layers without KV)
    std::vector<void*> recurrent;         // per layer
    std::vector<uint64_t> recurrent_bytes;
    float* hidden = nullptr;              // [chunk, n_embd]
    float* normed = nullptr;              // [lm_rows, n_embd]
    float* logits = nullptr;              // [lm_rows, n_vocab]
    int32_t* tokens = nullptr;            // [chunk]
    int32_t* positions = nullptr;         // [chunk]
    int32_t* block_table = nullptr;       // identity block table shared by the layers' KV views
    int32_t* recent = nullptr;            // [kMaxRecent] tokens for the repetition penalty
    int32_t* sampled = nullptr;           // [1] the token sample() picked
    const float* last_logits = nullptr;   // device row of the last token's logits, after forward()
    float* scratch = nullptr;
    const Weight* tok_embd = nullptr;
    const Weight* output = nullptr;
    const float* output_norm = nullptr;
    std::vector<int32_t> host_pos;

    Impl(const ModelSource& s, const Registry& r, Executor& e, const EngineOptions& o) : src(s), reg(r), ex(e), opt(o) {}

    int decode_graph = -1;                // captured one-token step, or -1

    void build();
    void run_chunk(int64_t cn, int64_t first_lm_row);  // embedding -> layers -> LM head rows [first_lm_row, cn)
    void allocate_runtime();
    void zero_recurrent();
};

void Engine::Impl::allocate_runtime() {
    const int64_t n_embd = desc.n_embd, n_vocab = desc.n_vocab;
    const uint64_t kv_es = dtype_size(opt.kv_dtype);
    const int64_t n_blocks = (capacity + kKvBlock - 1) / kKvBlock;
    block_table = static_cast<int32_t*>(ex.alloc(size_t(n_blocks) * 4, "kv block table"));
    std::vector<int32_t> identity(static_cast<size_t>(n_blocks));
    for (int64_t b = 0; b < n_blocks; ++b) identity[size_t(b)] = int32_t(b);
    ex.upload(block_table, identity.data(), identity.size() * 4);
    for (size_t i = 0; i < desc.layers.size(); ++i) {
        const StateSpec st = desc.layers[i]->state();
        KVCacheView v;
        if (st.kind == StateSpec::Kind::KV) {
            const uint64_t bytes = checked_mul(uint64_t(n_blocks * kKvBlock) * uint64_t(st.n_kv_heads),
                                               uint64_t(st.head_dim) * kv_es, "KV cache");
            const std::string tag = "kv." + std::to_string(i);
            v.k = ex.alloc(bytes, (tag + ".k").c_str());
            v.v = ex.alloc(bytes, (tag + ".v").c_str());
            v.dtype = opt.kv_dtype;
            v.capacity = capacity;
            v.n_kv_heads = st.n_kv_heads;
            v.head_dim = st.head_dim;
            v.block_size = int(kKvBlock);
            v.block_table = block_table;
        }
        kv.push_back(v);
        void* rec = nullptr;
        if (st.kind == StateSpec::Kind::Recurrent && st.recurrent_bytes > 0)
            rec = ex.alloc(st.recurrent_bytes, ("recurrent." + std::to_string(i)).c_str());
        recurrent.push_back(rec);
        recurrent_bytes.push_back(rec ? st.recurrent_bytes : 0);
    }
    hidden = static_cast<float*>(ex.alloc(size_t(chunk * n_embd) * 4, "hidden"));
    normed = static_cast<float*>(ex.alloc(size_t(lm_rows * n_embd) * 4, "normed"));
    logits = static_cast<float*>(ex.alloc(size_t(lm_rows * n_vocab) * 4, "logits"));
    tokens = static_cast<int32_t*>(ex.alloc(size_t(chunk) * 4, "tokens"));
    positions = static_cast<int32_t*>(ex.alloc(size_t(chunk) * 4, "positions"));
    recent = static_cast<int32_t*>(ex.alloc(size_t(kMaxRecent) * 4, "recent tokens"));
    sampled = static_cast<int32_t*>(ex.alloc(4, "sampled token"));
    scratch = static_cast<float*>(ex.alloc(std::max<uint64_t>(plan.scratch, 64), "scratch"));
    zero_recurrent();
}

void Engine::Impl::zero_recurrent() {
    for (size_t i = 0; i < recurrent.size(); ++i) {
        if (!recurrent[i]) continue;
        std::vector<uint8_t> zeros(recurrent_bytes[i], 0);
        ex.upload(recurrent[i], zeros.data(), zeros.size());
    }
}

void Engine::Impl::build() {
    const Arch* arch = reg.find_arch(src);
    if (!arch) {
        std::string names;
        for (const auto* a : reg.archs())
            for (const auto& s : a->architectures()) names += (names.empty() ? "" : ", ") + s;
        throw Error("no loaded plugin handles architecture '" + src.architecture() + "' (loaded architectures: " +
                    (names.empty() ? "none" : names) + ")");
    }
    desc = arch->build(src, reg);
    if (desc.n_vocab <= 0 || desc.n_embd <= 0 || desc.layers.empty())
        throw Error(src.path() + ": arch '" + arch->name() + "' built an empty model (n_vocab " +
                    std::to_string(desc.n_vocab) + ", n_embd " + std::to_string(desc.n_embd) + ", " +
                    std::to_string(desc.layers.size()) + " layers)");
    if (opt.max_seq_len < 0) throw Error("max_seq_len must be >= 0, got " + std::to_string(opt.max_seq_len));
    capacity = opt.max_seq_len > 0 ? opt.max_seq_len : desc.n_ctx_train > 0 ? std::min<int64_t>(desc.n_ctx_train, 8192)
                                                                             : 8192;
    if (opt.prefill_chunk <= 0) throw Error("prefill_chunk must be positive, got " + std::to_string(opt.prefill_chunk));
    chunk = std::min(opt.prefill_chunk, capacity);
    lm_rows = std::min(chunk, kLmHeadRows);
    if (capacity > INT32_MAX) throw Error("max_seq_len " + std::to_string(capacity) + " exceeds 2^31 - 1");

    // The memory plan, before anything is allocated.
    const char* fuse_env = std::getenv("IMP_FUSE_WEIGHTS");
    PlanOptions po;
    po.fuse = !(fuse_env && fuse_env[0] == '0');
    po.formats = opt.formats;
    po.max_tokens = chunk;
    po.compute_capability = device_compute_capability(ex);
    LoadPlan lp = plan_weights(src, reg, ex, desc, po);
    plan.weights = lp.weight_bytes;
    plan.fused = lp.fused;
    const uint64_t kv_es = dtype_size(opt.kv_dtype);
    for (const auto& l : desc.layers) {
        const StateSpec st = l->state();
        if (st.kind == StateSpec::Kind::KV) {
            if (st.n_kv_heads <= 0 || st.head_dim <= 0)
                throw Error(l->kind() + ": KV state with " + std::to_string(st.n_kv_heads) + " heads of dim " +
                            std::to_string(st.head_dim));
            const int64_t padded = (capacity + kKvBlock - 1) / kKvBlock * kKvBlock;
            plan.state += 2 * round64(checked_mul(uint64_t(padded) * uint64_t(st.n_kv_heads),
                                                  uint64_t(st.head_dim) * kv_es, "KV cache"));
        } else if (st.kind == StateSpec::Kind::Recurrent) {
            plan.state += round64(st.recurrent_bytes);
        }
        plan.scratch = std::max<uint64_t>(plan.scratch, uint64_t(l->scratch_floats(chunk)) * 4);
    }
    plan.scratch = round64(plan.scratch);
    plan.activations = round64(uint64_t(chunk * desc.n_embd) * 4) + round64(uint64_t(lm_rows * desc.n_embd) * 4) +
                       round64(uint64_t(lm_rows * desc.n_vocab) * 4) + 2 * round64(uint64_t(chunk) * 4) +
                       round64(uint64_t(kMaxRecent) * 4) + 64;

    // Admission: the plan must fit before anything is uploaded.
    const uint64_t avail = ex.available_bytes();
    if (plan.total() > avail)
        throw Error("model does not fit on " + ex.name() + ": needs " + human_bytes(plan.total()) + " (weights " +
                    human_bytes(plan.weights) + ", KV/state " + human_bytes(plan.state) + " for max_seq_len " +
                    std::to_string(capacity) + ", activations " + human_bytes(plan.activations) + ", scratch " +
                    human_bytes(plan.scratch) + ") but " + human_bytes(avail) +
                    " is free; lower runtime.max_seq_len or use runtime.kv_dtype = \"fp8\"");
    load_weights(src, lp, ex, weights);
    // One workspace for every matmul (e.g. dequantized tiles), sized for the largest chunk.
    uint64_t ws = 0;
    for (const auto& [name, w] : weights.matrices) ws = std::max(ws, std::max(w->workspace_bytes(chunk), w->workspace_bytes(lm_rows)));
    ws = std::max<uint64_t>(ws, lp.workspace_bytes);  // the formats' plans (expert stacks included)
    if (ws) ex.reserve_workspace(ws);
    plan.scratch += round64(ws);
    allocate_runtime();
    for (auto& l : desc.layers) l->bind(weights);
    tok_embd = weights.matrix(desc.tok_embd);
    output = weights.matrix(desc.output);
    output_norm = weights.vector(desc.output_norm);
    host_pos.resize(size_t(chunk));
    if (std::getenv("IMP_VERBOSE"))
        std::fprintf(stderr, "memory plan: weights %s, state %s (capacity %lld), activations %s, scratch %s\n",
                     human_bytes(plan.weights).c_str(), human_bytes(plan.state).c_str(), (long long)capacity,
                     human_bytes(plan.activations).c_str(), human_bytes(plan.scratch).c_str());
}

Engine::Engine(const ModelSource& src, const Registry& reg, Executor& ex, const EngineOptions& opt)
    : impl_(std::make_unique<Impl>(src, reg, ex, opt)) {
    impl_->build();
}

Engine::~Engine() = default;

const ModelDesc& Engine::desc() const { return impl_->desc; }
const MemoryPlan& Engine::plan() const { return impl_->plan; }
int64_t Engine::position() const { return impl_->pos; }
int64_t Engine::capacity() const { return impl_->capacity; }

void Engine::reset() {
    impl_->pos = 0;
    impl_->last_logits = nullptr;
    impl_->zero_recurrent();
}

int32_t Engine::sample(const SamplingParams& p, uint64_t step, const int32_t* recent, int64_t n_recent) {
    Impl& m = *impl_;
    if (!m.last_logits) throw Error("sample: no logits yet (call forward first)");
    n_recent = std::clamp<int64_t>(n_recent, 0, kMaxRecent);
    if (n_recent) m.ex.upload(m.recent, recent, size_t(n_recent) * 4);
    m.ex.sample(m.last_logits, m.desc.n_vocab, p, step, m.recent, n_recent, m.sampled);
    int32_t t = -1;
    m.ex.download(&t, m.sampled, 4);
    return t;
}

void Engine::forward(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
    Impl& m = *impl_;
    if (n < 0) throw Error("forward: negative token count " + std::to_string(n));
    if (n == 0) return;
    if (m.pos + n > m.capacity)
        throw Error("context overflow: position " + std::to_string(m.pos) + " + " + std::to_string(n) +
                    " tokens exceeds the capacity of " + std::to_string(m.capacity) + " tokens (max_seq_len)");
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= m.desc.n_vocab)
            throw Error("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                        " is outside the vocabulary of " + std::to_string(m.desc.n_vocab));
    Executor& ex = m.ex;
    const int64_t n_vocab = m.desc.n_vocab;
    // Decode: one token through the captured graph (captured on first use; positions and the token id are read
    // from device buffers, so the same graph serves every step).
    if (n == 1 && m.opt.cuda_graphs && ex.supports_graphs()) {
        m.host_pos[0] = int32_t(m.pos);
        ex.upload(m.tokens, tokens, 4);
        ex.upload(m.positions, m.host_pos.data(), 4);
        if (m.decode_graph < 0) {
            ex.capture_begin();
            m.run_chunk(1, 0);
            m.decode_graph = ex.capture_end();
        }
        ex.replay(m.decode_graph);
        m.pos += 1;
        m.last_logits = m.logits;
        if (logits) ex.download(logits, m.logits, size_t(n_vocab) * 4);
        return;
    }
    for (int64_t off = 0; off < n; off += m.chunk) {
        const int64_t cn = std::min(m.chunk, n - off);
        for (int64_t i = 0; i < cn; ++i) m.host_pos[size_t(i)] = int32_t(m.pos + i);
        ex.upload(m.tokens, tokens + off, size_t(cn) * 4);
        ex.upload(m.positions, m.host_pos.data(), size_t(cn) * 4);
        // LM head: every row of the chunk (all_logits), or the last token of the last chunk. The last token's
        // logits stay on the device for sample(); they are downloaded when `logits` is given.
        const bool last = off + cn == n;
        if (!(all_logits && logits)) {
            m.run_chunk(cn, last ? cn - 1 : cn);
            m.pos += cn;
            if (last) {
                m.last_logits = m.logits;
                if (logits) ex.download(logits, m.logits, size_t(n_vocab) * 4);
            }
            continue;
        }
        // All logits: the LM head in sub-batches of lm_rows, each downloaded.
        m.run_chunk(cn, cn);
        m.pos += cn;
        const int64_t n_embd = m.desc.n_embd;
        for (int64_t r0 = 0; r0 < cn; r0 += m.lm_rows) {
            const int64_t rn = std::min(m.lm_rows, cn - r0);
            ex.rms_norm(m.hidden + r0 * n_embd, m.output_norm, m.normed, rn, n_embd, m.desc.norm_eps);
            m.output->matmul(ex, m.normed, n_embd, m.logits, n_vocab, rn, false);
            if (last && r0 + rn == cn) m.last_logits = m.logits + (rn - 1) * n_vocab;
            ex.download(logits + (off + r0) * n_vocab, m.logits, size_t(rn * n_vocab) * 4);
        }
    }
}

void Engine::Impl::run_chunk(int64_t cn, int64_t first_lm_row) {
    const int64_t n_embd = desc.n_embd, n_vocab = desc.n_vocab;
    tok_embd->get_rows(ex, tokens, cn, hidden);
    Batch batch{cn, pos, positions};
    for (size_t l = 0; l < desc.layers.size(); ++l) {
        LayerContext ctx{ex, batch, kv[l], recurrent[l], scratch};
        desc.layers[l]->forward(ctx, hidden);
    }
    if (first_lm_row >= cn) return;
    const int64_t rn = cn - first_lm_row;  // at most one row here (the last token)
    ex.rms_norm(hidden + first_lm_row * n_embd, output_norm, normed, rn, n_embd, desc.norm_eps);
    output->matmul(ex, normed, n_embd, logits, n_vocab, rn, false);
}

bool Engine::graphs_active() const { return impl_->decode_graph >= 0; }

}  // namespace imp
