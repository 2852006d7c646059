// quant_ggml expert weights on a CUDA device (cuda/cuda_experts.h): grouped_matmul against the double-precision
// dense reference of each expert's CPU reference dequantization, for every CUDA type, 1/2/5/8/33 tokens, top_k
// 1/4/8, both paths (one work item per (token, slot) pair, and pairs grouped by expert), unweighted and
// routing-weighted, x per token or per slot, y = and y +=, an id out of range; forced GEMV plans; a captured CUDA
// graph replayed after new ids and weights are written to device memory. Outputs start poisoned (or random when
// accumulating); every output must be written and nothing else; results must be bit for bit the same from
// per-expert pointers and from one contiguous buffer, and from run to run. Bound (relative norm ||y - ref|| / ||ref||,
// as cuda_matmul_test.cpp's GEMV): 1e-3 (the activations keep ~16 bits; observed ~1e-6 for the dense GEMV).
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_experts.h"
#include "experts_check.h"
#include "experts_reference.h"
#include "gpu_test_util.h"
#include "imp/error.h"
#include "test_executor.h"

using namespace imp::ggml;
using namespace imp::ggml::test;

namespace {

constexpr double kTol = 1e-3;

int64_t small_cols(const TypeInfo& t) {
    return t.block == 1 ? 203 : (t.block == 32 ? 7 * 32 : 3 * 256);
}

struct Case {
    int64_t n_tokens, top_k;
    bool weighted, x_per_slot, accumulate;
};

// Device inputs of one routing: x, ids, weights (and a y buffer of n_alloc rows of stride ys).
struct DeviceCase {
    float* x = nullptr;
    int32_t* ids = nullptr;
    float* weights = nullptr;
    float* y = nullptr;
};

imp::ExpertMatmul matmul_args(const Case& c, const DeviceCase& d, int64_t xs, int64_t ys) {
    imp::ExpertMatmul m;
    m.x = d.x;
    m.x_stride = xs;
    m.x_per_slot = c.x_per_slot;
    m.ids = d.ids;
    m.weights = c.weighted ? d.weights : nullptr;
    m.n_tokens = c.n_tokens;
    m.top_k = c.top_k;
    m.y = d.y;
    m.y_stride = ys;
    m.accumulate = c.accumulate;
    return m;
}

// y starts as init; returns the downloaded y.
std::vector<float> run(imp::CudaExecutor& ex, const imp::ExpertWeights& w, const Case& c, const DeviceCase& d,
                       int64_t xs, int64_t ys, const std::vector<float>& init) {
    ex.upload(d.y, init.data(), init.size() * 4);
    w.grouped_matmul(ex, matmul_args(c, d, xs, ys));
    ex.synchronize();
    std::vector<float> out(init.size());
    ex.download(out.data(), d.y, out.size() * 4);
    return out;
}

// init: n_alloc rows of stride ys, poison except the used region when accumulating (y0 there, scaled to the size
// of the result).
std::vector<float> initial_y(const Expected& e, int64_t ys, int64_t n_alloc, bool accumulate, std::mt19937& rng) {
    std::vector<float> init(size_t(n_alloc * ys));
    std::memset(init.data(), 0xFF, init.size() * 4);
    if (!accumulate) return init;
    double ss = 0;
    for (const double v : e.value) ss += v * v;
    const float scale = float(std::sqrt(ss / double(e.value.size() ? e.value.size() : 1))) + 1e-3f;
    const auto z = random_floats(size_t(e.n_out * e.rows), rng);
    for (int64_t o = 0; o < e.n_out; ++o)
        for (int64_t r = 0; r < e.rows; ++r) init[size_t(o * ys + r)] = z[size_t(o * e.rows + r)] * scale;
    return init;
}

struct Result {
    double rel = 0;
    int64_t unwritten = 0, overwritten = 0, bad_exact = 0;
};

Result check(const Expected& e, const std::vector<float>& y, int64_t ys, int64_t n_alloc,
             const std::vector<float>& init, bool accumulate) {
    Result res;
    double num = 0, den = 0;
    for (int64_t o = 0; o < n_alloc; ++o)
        for (int64_t r = 0; r < ys; ++r) {
            const size_t i = size_t(o * ys + r);
            const float v = y[i];
            if (o >= e.n_out || r >= e.rows) {
                res.overwritten += std::memcmp(&v, &init[i], 4) != 0;
                continue;
            }
            if (e.exact[size_t(o)]) {
                const float want = accumulate ? init[i] : 0.f;
                res.bad_exact += std::memcmp(&v, &want, 4) != 0;
                continue;
            }
            if (is_poison(v)) {
                ++res.unwritten;
                continue;
            }
            const double ref = e.value[size_t(o * e.rows + r)], d = double(v) - ref;
            num += d * d;
            den += ref * ref;
        }
    res.rel = std::sqrt(num) / std::sqrt(den > 0 ? den : 1e-300);
    if (std::isnan(num)) res.rel = NAN;
    return res;
}

void require_ok(const Result& r) {
    CHECK(r.unwritten == 0);
    CHECK(r.overwritten == 0);
    CHECK(r.bad_exact == 0);
    CHECK(r.rel <= kTol);
    if (!(r.rel <= kTol)) FAIL_CHECK("relative error " << r.rel);
}

// Uploads a fresh routing and x for (n_tokens, top_k) into d (buffers sized for the largest case).
struct HostCase {
    std::vector<float> x;
    Routing rt;
};
HostCase upload_case(imp::CudaExecutor& ex, const DeviceCase& d, int64_t n_tokens, int64_t top_k, int64_t n_expert,
                     int64_t xs, bool x_per_slot, std::mt19937& rng) {
    HostCase h;
    h.x = random_floats(size_t((x_per_slot ? n_tokens * top_k : n_tokens) * xs), rng);
    h.rt = random_routing(n_tokens, top_k, n_expert, true, rng);
    ex.upload(d.x, h.x.data(), h.x.size() * 4);
    ex.upload(d.ids, h.rt.ids.data(), h.rt.ids.size() * 4);
    ex.upload(d.weights, h.rt.weights.data(), h.rt.weights.size() * 4);
    return h;
}

DeviceCase alloc_case(imp::CudaExecutor& ex, int64_t max_pairs, int64_t xs, int64_t ys, int64_t n_alloc) {
    DeviceCase d;
    d.x = static_cast<float*>(ex.alloc(size_t(max_pairs * xs) * 4, "x"));
    d.ids = static_cast<int32_t*>(ex.alloc(size_t(max_pairs) * 4, "ids"));
    d.weights = static_cast<float*>(ex.alloc(size_t(max_pairs) * 4, "weights"));
    d.y = static_cast<float*>(ex.alloc(size_t(n_alloc * ys) * 4, "y"));
    return d;
}

// The test case's body over `types` (every_type_part: one of 9 parts of the types) and one of two shapes (0: small
// experts, 1: larger ones): 18 test cases, each short enough for one sanitizer run.
void grouped_matmul_types(const std::vector<std::string>& types, int shape) {
    REQUIRE(!types.empty());
    auto ex = make_gpu();
    INFO("device " << ex->name());
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const std::string name = "blk.2.ffn_gate_exps.weight";
    for (const std::string& type : types) {
        const TypeInfo& t = *find_type(type);
        struct Shape {
            int64_t n_expert, rows, cols;
        };
        // 37 rows: every expert padded to a whole 16-row tile; 160 rows x ~1K columns: several CTAs per expert.
        const Shape shapes[2] = {Shape{10, 37, small_cols(t)}, Shape{12, 160, t.block == 1 ? 1001 : 1024}};
        const Shape s = shapes[shape];
        const RandomExperts w = random_experts(type, s.n_expert, s.rows, s.cols, rng);
        const auto a = cuda::load_experts(name, t.type, s.n_expert, s.rows, s.cols,
                                          expert_pointers(w.raw.data(), s.n_expert, s.rows, w.row_bytes), *ex);
        const auto b = cuda::load_experts(name, t.type, s.n_expert, s.rows, s.cols, w.per_expert(), *ex);
        // Each expert's rows in two parts held in two other buffers (a fused gate|up stack's layout).
        const int64_t r1 = s.rows / 3, r2 = s.rows - r1;
        const uint64_t rb = w.row_bytes;
        std::vector<uint8_t> p1(uint64_t(s.n_expert * r1) * rb), p2(uint64_t(s.n_expert * r2) * rb);
        std::vector<std::vector<cuda::ExpertRows>> parts(static_cast<size_t>(s.n_expert));
        for (int64_t e = 0; e < s.n_expert; ++e) {
            const uint8_t* src = w.raw.data() + uint64_t(e * s.rows) * rb;
            std::memcpy(p1.data() + uint64_t(e * r1) * rb, src, uint64_t(r1) * rb);
            std::memcpy(p2.data() + uint64_t(e * r2) * rb, src + uint64_t(r1) * rb, uint64_t(r2) * rb);
            parts[size_t(e)] = {{p1.data() + uint64_t(e * r1) * rb, r1}, {p2.data() + uint64_t(e * r2) * rb, r2}};
        }
        const auto j = cuda::load_experts(name, t.type, s.n_expert, s.rows, s.cols, parts, *ex);
        REQUIRE(a->n_expert() == s.n_expert);
        REQUIRE(a->rows() == s.rows);
        REQUIRE(a->cols() == s.cols);
        CHECK(a->type() == type);
        CHECK(a->bytes() == cuda::experts_device_bytes(name, t.type, s.n_expert, s.rows, s.cols));
        ex->reserve_workspace(a->workspace_bytes(33, 8));
        const int64_t xs = s.cols + 3, ys = s.rows + 5, max_pairs = 33 * 8, n_alloc = max_pairs + 1;
        const DeviceCase d = alloc_case(*ex, max_pairs, xs, ys, n_alloc);
        for (const int64_t n_tokens : {1, 2, 5, 8, 33})
            for (const int64_t top_k : {1, 4, 8})
                for (const bool x_per_slot : {false, true}) {
                    const HostCase h = upload_case(*ex, d, n_tokens, top_k, s.n_expert, xs, x_per_slot, rng);
                    const PairDots dots = pair_dots(w, h.x, xs, x_per_slot, h.rt, n_tokens, top_k);
                    for (const int path : {1, 2}) {
                        cuda::set_experts_plan(*a, {path, 0, 0});
                        cuda::set_experts_plan(*b, {path, 0, 0});
                        cuda::set_experts_plan(*j, {path, 0, 0});
                        for (const bool weighted : {false, true})
                            for (const bool acc : {false, true}) {
                                const Case c{n_tokens, top_k, weighted, x_per_slot, acc};
                                INFO(type << " " << s.n_expert << "x" << s.rows << "x" << s.cols << ", tokens "
                                          << n_tokens << ", top_k " << top_k << ", path " << path
                                          << (weighted ? ", weighted" : "") << (x_per_slot ? ", x per slot" : "")
                                          << (acc ? ", accumulate" : ""));
                                const Expected e0 =
                                    combine(dots, s.n_expert, h.rt, weighted, n_tokens, top_k, nullptr, ys);
                                const auto init = initial_y(e0, ys, n_alloc, acc, rng);
                                const Expected e =
                                    acc ? combine(dots, s.n_expert, h.rt, weighted, n_tokens, top_k, &init, ys)
                                        : e0;
                                const auto y = run(*ex, *a, c, d, xs, ys, init);
                                require_ok(check(e, y, ys, n_alloc, init, acc));
                                if (acc) continue;
                                // Per-expert pointers, experts in two parts, and a second run: bit for bit
                                // the same.
                                const auto y2 = run(*ex, *b, c, d, xs, ys, init);
                                const auto y3 = run(*ex, *a, c, d, xs, ys, init);
                                const auto y4 = run(*ex, *j, c, d, xs, ys, init);
                                CHECK(std::memcmp(y.data(), y2.data(), y.size() * 4) == 0);
                                CHECK(std::memcmp(y.data(), y3.data(), y.size() * 4) == 0);
                                CHECK(std::memcmp(y.data(), y4.data(), y.size() * 4) == 0);
                            }
                    }
                }
    }
}

}  // namespace

#define GROUPED_MATMUL_TYPES(K)                                                                            \
    TEST_CASE("quant_ggml cuda experts: grouped_matmul equals the dense reference for every CUDA "         \
              "type (part " #K " of 9, 10 experts x 37 rows)",                                             \
              "[quant_ggml_gpu][experts]") {                                                               \
        grouped_matmul_types(every_type_part(cuda_types(), K - 1, 9), 0);                                  \
    }                                                                                                      \
    TEST_CASE("quant_ggml cuda experts: grouped_matmul equals the dense reference for every CUDA "         \
              "type (part " #K " of 9, 12 experts x 160 rows)",                                            \
              "[quant_ggml_gpu][experts]") {                                                               \
        grouped_matmul_types(every_type_part(cuda_types(), K - 1, 9), 1);                                  \
    }
GROUPED_MATMUL_TYPES(1)
GROUPED_MATMUL_TYPES(2)
GROUPED_MATMUL_TYPES(3)
GROUPED_MATMUL_TYPES(4)
GROUPED_MATMUL_TYPES(5)
GROUPED_MATMUL_TYPES(6)
GROUPED_MATMUL_TYPES(7)
GROUPED_MATMUL_TYPES(8)
GROUPED_MATMUL_TYPES(9)
#undef GROUPED_MATMUL_TYPES

TEST_CASE("quant_ggml cuda experts: forced GEMV plans (warps per row group, column splits over a cluster)",
          "[quant_ggml_gpu][experts]") {
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    for (const std::string type : {"Q4_K", "Q6_K", "Q8_0", "Q4_1", "Q5_K", "Q4_0"}) {
        const Type t = find_type(type)->type;
        const int64_t n_expert = 6, rows = 48, cols = 2048;
        const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
        const auto e = cuda::load_experts("e", t, n_expert, rows, cols, w.per_expert(), *ex);
        ex->reserve_workspace(e->workspace_bytes(9, 4));
        const int64_t xs = cols, ys = rows, n_alloc = 9 * 4 + 1;
        const DeviceCase d = alloc_case(*ex, 9 * 4, xs, ys, n_alloc);
        struct Plan {
            int splits, kw;
        };
        for (const int64_t n_tokens : {1, 9})
            for (const int path : {1, 2}) {
                const HostCase h = upload_case(*ex, d, n_tokens, 4, n_expert, xs, false, rng);
                const PairDots dots = pair_dots(w, h.x, xs, false, h.rt, n_tokens, 4);
                for (const Plan p : {Plan{0, 0}, Plan{1, 1}, Plan{3, 2}, Plan{2, 4}, Plan{1, 8}, Plan{4, 1}})
                    for (const bool weighted : {false, true}) {
                        INFO(type << ", tokens " << n_tokens << ", path " << path << ", splits " << p.splits
                                  << ", warps per row group " << p.kw << (weighted ? ", weighted" : ""));
                        cuda::set_experts_plan(*e, {path, p.splits, p.kw});
                        const Case c{n_tokens, 4, weighted, false, false};
                        const Expected ref = combine(dots, n_expert, h.rt, weighted, n_tokens, 4, nullptr, ys);
                        const auto init = initial_y(ref, ys, n_alloc, false, rng);
                        require_ok(check(ref, run(*ex, *e, c, d, xs, ys, init), ys, n_alloc, init, false));
                    }
            }
    }
}

TEST_CASE("quant_ggml cuda experts: a captured graph follows new ids and weights in device memory",
          "[quant_ggml_gpu][experts][graph]") {
    auto ex = make_gpu();
    const uint32_t seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    for (const std::string type : {"Q4_K", "Q8_0", "BF16", "Q6_K"}) {
        const Type t = find_type(type)->type;
        const int64_t n_expert = 16, rows = 96, cols = 1024;
        const RandomExperts w = random_experts(type, n_expert, rows, cols, rng);
        const auto e = cuda::load_experts("blk.0.ffn_down_exps.weight", t, n_expert, rows, cols,
                                          expert_pointers(w.raw.data(), n_expert, rows, w.row_bytes), *ex);
        ex->reserve_workspace(e->workspace_bytes(33, 8));
        const int64_t xs = cols, ys = rows, n_alloc = 33 * 8 + 1;
        const DeviceCase d = alloc_case(*ex, 33 * 8, xs, ys, n_alloc);
        // 1 token: per pair (auto); 33 tokens x 8 > 16 experts: grouped (auto).
        for (const int64_t n_tokens : {1, 33})
            for (const bool weighted : {false, true}) {
                const Case c{n_tokens, 8, weighted, true, false};
                HostCase h = upload_case(*ex, d, n_tokens, 8, n_expert, xs, true, rng);
                ex->capture_begin();
                e->grouped_matmul(*ex, matmul_args(c, d, xs, ys));
                const int graph = ex->capture_end();
                for (int rep = 0; rep < 3; ++rep) {
                    INFO(type << ", tokens " << n_tokens << (weighted ? ", weighted" : "") << ", replay " << rep);
                    if (rep > 0) h = upload_case(*ex, d, n_tokens, 8, n_expert, xs, true, rng);  // new routing
                    const Expected ref = expected(w, h.x, xs, true, h.rt, weighted, n_tokens, 8, nullptr, ys);
                    const auto init = initial_y(ref, ys, n_alloc, false, rng);
                    ex->upload(d.y, init.data(), init.size() * 4);
                    ex->replay(graph);
                    ex->synchronize();
                    std::vector<float> y(init.size());
                    ex->download(y.data(), d.y, y.size() * 4);
                    require_ok(check(ref, y, ys, n_alloc, init, false));
                }
            }
    }
}

TEST_CASE("quant_ggml cuda experts: one allocation, load errors, workspace errors", "[quant_ggml_gpu][experts]") {
    auto ex = make_gpu();
    std::mt19937 rng(909);
    const RandomExperts w = random_experts("Q4_K", 128, 24, 512, rng);
    const uint64_t before = ex->bytes_allocated();
    const auto e = cuda::load_experts("blk.5.ffn_up_exps.weight", Type::Q4_K, 128, 24, 512, w.per_expert(), *ex);
    // 24 rows: two 16-row tiles per expert; all experts in one allocation (CudaExecutor allocates in 256s).
    CHECK(e->bytes() == 128 * 2 * 2 * 2304);
    CHECK(ex->bytes_allocated() - before == (e->bytes() + 255) / 256 * 256);
    CHECK(cuda::experts_supported(Type::Q6_K));
    CHECK_FALSE(cuda::experts_supported(Type::Q5_1));
    const RandomExperts bad = random_experts("Q5_1", 2, 8, 64, rng);
    CHECK_THROWS_WITH(cuda::load_experts("blk.5.ffn_up_exps.weight", Type::Q5_1, 2, 8, 64, bad.per_expert(), *ex),
                      Catch::Contains("blk.5.ffn_up_exps.weight") && Catch::Contains("Q5_1"));
    CHECK_THROWS_WITH(cuda::experts_device_bytes("t", Type::IQ4_XS, 2, 8, 256), Catch::Contains("IQ4_XS"));
    CHECK_THROWS_WITH(cuda::load_experts("t", Type::Q4_K, 3, 24, 512, w.per_expert(), *ex),
                      Catch::Contains("128 expert data pointers for 3"));
    TestExecutor cpu(1);
    CHECK_THROWS_WITH(cuda::load_experts("blk.5.ffn_up_exps.weight", Type::Q4_K, 128, 24, 512, w.per_expert(), cpu),
                      Catch::Contains("no CUDA handles"));
    // A weighted call needs the workspace: a fresh executor has none reserved.
    auto fresh = make_gpu();
    const auto e2 = cuda::load_experts("blk.5.ffn_up_exps.weight", Type::Q4_K, 128, 24, 512, w.per_expert(), *fresh);
    const DeviceCase d = alloc_case(*fresh, 8, 512, 24, 8);
    const std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5, 6, 7};
    fresh->upload(d.ids, ids.data(), 32);
    const Case c{1, 8, true, false, false};
    CHECK(e2->workspace_bytes(1, 8) > 0);
    CHECK_THROWS_WITH(e2->grouped_matmul(*fresh, matmul_args(c, d, 512, 24)),
                      Catch::Contains("blk.5.ffn_up_exps.weight") && Catch::Contains("workspace"));
}
