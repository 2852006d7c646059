// CUDA executor: device, memory accounting, graphs, and the element-wise / norm / RoPE kernels against the CPU
// reference on fresh random inputs.
#include <cublas_v2.h>

#include <algorithm>
#include <string>

#include "exec/cuda/cuda_test_util.h"
#include "imp/error.h"

using namespace imp;
using namespace imp::cuda_test;

TEST_CASE("cuda: a GPU is present and the executor describes it", "[cuda]") {
    REQUIRE(cuda_device_count() > 0);
    CudaExecutor& ex = gpu();
    INFO(ex.name());
    CHECK(ex.kind() == DeviceKind::CUDA);
    const CudaHandles* h = ex.cuda();
    REQUIRE(h != nullptr);
    CHECK(h->stream != nullptr);
    CHECK(h->cublas != nullptr);
    CHECK(h->cublaslt != nullptr);
    CHECK(h->lt_workspace != nullptr);
    CHECK(h->lt_workspace_bytes >= (size_t(32) << 20));
    CHECK(h->cc >= 70);
    CHECK(h->sm_count > 0);
    CHECK(ex.available_bytes() > 0);
    CHECK(ex.supports_graphs());
    CHECK_THROWS_WITH(CudaExecutor(1000), Catch::Contains("cuda: device 1000 does not exist"));
}

TEST_CASE("cuda: alloc counts cudaMalloc, zero-fills, and reports out of memory with tag and size", "[cuda]") {
    CudaExecutor& ex = gpu();
    const CudaAllocStats s0 = cuda_alloc_stats();
    const size_t held0 = ex.bytes_allocated();
    float* p = static_cast<float*>(ex.alloc(1000 * sizeof(float), "counter test"));
    const CudaAllocStats s1 = cuda_alloc_stats();
    CHECK(s1.mallocs == s0.mallocs + 1);
    CHECK(s1.bytes >= s0.bytes + 4000);
    CHECK(ex.bytes_allocated() >= held0 + 4000);
    const auto z = from_dev(p, 1000);
    CHECK(std::all_of(z.begin(), z.end(), [](float x) { return x == 0.f; }));
    try {
        ex.alloc(size_t(1) << 50, "huge buffer");
        FAIL("expected an out-of-memory error");
    } catch (const Error& e) {
        const std::string m = e.what();
        INFO(m);
        CHECK(m.find("huge buffer") != std::string::npos);
        CHECK(m.find(std::to_string(size_t(1) << 50)) != std::string::npos);
        CHECK(m.find("free") != std::string::npos);
        CHECK(m.find('\n') == std::string::npos);
    }
    // The executor still works after the failed allocation.
    std::vector<float> h(1000, 2.f);
    ex.upload(p, h.data(), h.size() * 4);
    CHECK(from_dev(p, 1000) == h);
    // Workspace: one allocation at reserve time, none for a smaller request.
    const CudaAllocStats s2 = cuda_alloc_stats();
    ex.reserve_workspace(size_t(1) << 20);
    CHECK(ex.workspace() != nullptr);
    CHECK(ex.workspace_bytes() >= (size_t(1) << 20));
    ex.reserve_workspace(size_t(1) << 10);
    CHECK(cuda_alloc_stats().mallocs == s2.mallocs + 1);
    // ... zero-filled, and again when it grows (deterministic content; compute-sanitizer initcheck does not see
    // cuBLASLt's writes into it and would report every read of them).
    const size_t wn = (size_t(1) << 20) / sizeof(float);
    const auto w0 = from_dev(static_cast<float*>(ex.workspace()), wn);
    CHECK(std::all_of(w0.begin(), w0.end(), [](float x) { return x == 0.f; }));
    const std::vector<float> ones(wn, 1.f);
    ex.upload(ex.workspace(), ones.data(), ones.size() * sizeof(float));
    ex.reserve_workspace(size_t(2) << 20);
    const auto w1 = from_dev(static_cast<float*>(ex.workspace()), 2 * wn);
    CHECK(std::all_of(w1.begin(), w1.end(), [](float x) { return x == 0.f; }));
}

TEST_CASE("cuda: rms_norm matches the CPU", "[cuda]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const std::pair<int64_t, int64_t> shapes[] = {{1, 4096}, {7, 1000}, {3, 33}, {5, 576}, {2, 2}, {64, 2048}};
    for (auto [rows, n] : shapes) {
        for (int with_w = 0; with_w < 2; ++with_w) {
            INFO("rows " << rows << " n " << n << " weight " << with_w);
            const auto x = rand_vec(rng, size_t(rows * n), -3.f, 3.f);
            const auto w = rand_vec(rng, size_t(n), 0.5f, 1.5f);
            std::vector<float> ref(x.size());
            cpu().rms_norm(x.data(), with_w ? w.data() : nullptr, ref.data(), rows, n, 1e-5f);
            float* dx = to_dev(x);
            float* dw = to_dev(w);
            float* dy = to_dev(std::vector<float>(x.size()));
            gpu().rms_norm(dx, with_w ? dw : nullptr, dy, rows, n, 1e-5f);
            CHECK(max_rel_err(from_dev(dy, x.size()), ref) <= 1e-5);
            gpu().rms_norm(dx, with_w ? dw : nullptr, dx, rows, n, 1e-5f);  // in place
            CHECK(max_rel_err(from_dev(dx, x.size()), ref) <= 1e-5);
        }
    }
}

TEST_CASE("cuda: prefetch_l2 changes nothing, eagerly and inside a replayed graph", "[cuda]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    // 48 MB of weights-like data: an unaligned start, an empty and a null range, more ranges than one call takes,
    // and (last) a range past the per-call cap
    const size_t n = size_t(12) << 20;
    const auto host = rand_vec(rng, n, -1.f, 1.f);
    float* w = to_dev(host);
    std::vector<DeviceRange> r = {{w + 3, 1000}, {w, 0}, {nullptr, 64}};
    for (int i = 0; i < 20; ++i) r.push_back({w + size_t(i) * 4099, 4096 + size_t(i) * 77});
    CudaExecutor& ex = gpu();
    ex.prefetch_l2(r.data(), r.size());
    const DeviceRange all{w, n * 4};
    ex.prefetch_l2(&all, 1);
    ex.prefetch_l2(r.data(), 0);
    ex.synchronize();
    // inside a graph, between two dependent kernels (the second norm reads what the first wrote; the first is long,
    // with blocks on every SM, so a prefetch kernel that did not wait for it would let the second read zeros)
    const int64_t rows = 2 * int64_t(ex.cuda()->sm_count), cols = 65536;
    const auto x = rand_vec(rng, size_t(rows * cols), -3.f, 3.f);
    const auto nw = rand_vec(rng, size_t(cols), 0.5f, 1.5f);
    std::vector<float> ref(x.size()), twice(x.size());
    cpu().rms_norm(x.data(), nw.data(), ref.data(), rows, cols, 1e-5f);
    cpu().rms_norm(ref.data(), nw.data(), twice.data(), rows, cols, 1e-5f);
    float* dx = to_dev(x);
    float* dn = to_dev(nw);
    float* dy = to_dev(std::vector<float>(x.size()));
    float* dz = to_dev(std::vector<float>(x.size()));
    ex.synchronize();
    ex.capture_begin();
    ex.fill_zero(dy, x.size() * 4);
    ex.rms_norm(dx, dn, dy, rows, cols, 1e-5f);
    ex.prefetch_l2(r.data(), r.size());
    ex.rms_norm(dy, dn, dz, rows, cols, 1e-5f);
    const int graph = ex.capture_end();
    REQUIRE(graph >= 0);
    for (int rep = 0; rep < 3; ++rep) {
        ex.fill_zero(dz, x.size() * 4);
        ex.replay(graph);
        CHECK(max_rel_err(from_dev(dz, x.size()), twice) <= 1e-5);
    }
    CHECK(from_dev(w, n) == host);  // the prefetched memory is unchanged
}

TEST_CASE("cuda: rope matches the CPU in every variant", "[cuda]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    struct Case {
        int head_dim, n_rot, n_heads;
        bool neox;
        float freq_scale;
        bool factors;
        int64_t extra_stride;
    };
    const Case cases[] = {
        {64, 64, 9, false, 1.f, false, 0},   {64, 64, 9, true, 1.f, false, 0},   {128, 64, 4, true, 1.f, false, 3},
        {128, 32, 4, false, 0.25f, false, 0}, {128, 128, 16, true, 0.5f, true, 8}, {80, 40, 3, false, 1.f, true, 1},
        {256, 256, 2, true, 1.f, false, 0},  {6, 2, 5, true, 1.f, false, 0},
    };
    for (const Case& c : cases) {
        INFO("head_dim " << c.head_dim << " n_rot " << c.n_rot << " neox " << c.neox << " scale " << c.freq_scale
                         << " factors " << c.factors);
        const int64_t n_tokens = 11;
        const int64_t stride = int64_t(c.n_heads) * c.head_dim + c.extra_stride;
        const auto x = rand_vec(rng, size_t(n_tokens * stride));
        std::vector<int32_t> pos(n_tokens);
        std::uniform_int_distribution<int32_t> pd(0, 40000);
        for (auto& p : pos) p = pd(rng);
        pos[0] = 0;
        pos[1] = 1;
        const auto ff = rand_vec(rng, size_t(c.n_rot / 2), 1.f, 8.f);
        RopeParams p;
        p.head_dim = c.head_dim;
        p.n_rot = c.n_rot;
        p.base = c.head_dim == 256 ? 1000000.f : 10000.f;
        p.neox = c.neox;
        p.freq_scale = c.freq_scale;
        std::vector<float> ref = x;
        RopeParams pc = p;
        pc.freq_factors = c.factors ? ff.data() : nullptr;
        cpu().rope(ref.data(), stride, pos.data(), n_tokens, c.n_heads, pc);
        float* dx = to_dev(x);
        int32_t* dpos = to_dev(pos);
        RopeParams pg = p;
        pg.freq_factors = c.factors ? to_dev(ff) : nullptr;
        gpu().rope(dx, stride, dpos, n_tokens, c.n_heads, pg);
        CHECK(max_rel_err(from_dev(dx, x.size()), ref) <= 1e-5);
    }
    RopeParams bad;
    bad.head_dim = 64;
    bad.n_rot = 65;
    CHECK_THROWS_WITH(gpu().rope(nullptr, 64, nullptr, 1, 1, bad),
                      Catch::Contains("cuda rope: n_rot 65 must be even and in (0, head_dim 64]"));
}

TEST_CASE("cuda: swiglu and add match the CPU", "[cuda]") {
    const uint32_t seed = fresh_seed();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const std::tuple<int64_t, int64_t, int64_t> shapes[] = {{1, 8192, 0}, {5, 1000, 0}, {3, 37, 5}, {17, 512, 512}};
    for (auto [rows, n, pad] : shapes) {
        INFO("rows " << rows << " n " << n << " pad " << pad);
        const int64_t stride = n + pad;
        const auto g = rand_vec(rng, size_t(rows * stride), -6.f, 6.f);
        const auto u = rand_vec(rng, size_t(rows * stride), -2.f, 2.f);
        std::vector<float> ref(static_cast<size_t>(rows * n));
        cpu().swiglu(g.data(), stride, u.data(), stride, ref.data(), rows, n);
        float* dout = to_dev(std::vector<float>(ref.size()));
        gpu().swiglu(to_dev(g), stride, to_dev(u), stride, dout, rows, n);
        CHECK(max_rel_err(from_dev(dout, ref.size()), ref) <= 1e-6);
    }
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(4096), int64_t(100003)}) {
        INFO("add n " << n);
        auto x = rand_vec(rng, size_t(n));
        const auto y = rand_vec(rng, size_t(n));
        float* dx = to_dev(x);
        gpu().add(dx, to_dev(y), n);
        cpu().add(x.data(), y.data(), n);
        CHECK(from_dev(dx, size_t(n)) == x);
    }
}

TEST_CASE("cuda: a graph captured with the workspace's address replays correctly after the workspace grew",
          "[cuda]") {
    CudaExecutor ex;
    const size_t n = (size_t(1) << 20) / sizeof(float);
    ex.reserve_workspace(n * sizeof(float));
    std::vector<float> h(n);
    for (size_t i = 0; i < n; ++i) h[i] = float(i % 977) - 488.f;
    ex.upload(ex.workspace(), h.data(), n * sizeof(float));
    float* out = static_cast<float*>(ex.alloc(n * sizeof(float), "out"));
    ex.capture_begin();
    ex.copy(out, ex.workspace(), n * sizeof(float));
    const int id = ex.capture_end();
    void* const old = ex.workspace();
    const uint64_t before = ex.bytes_allocated();
    ex.reserve_workspace(4 * n * sizeof(float));  // grows: a new block
    CHECK(ex.workspace() != old);
    CHECK(ex.bytes_allocated() == before + 4 * n * sizeof(float));  // the old block is kept for the graph
    // New allocations cannot take the old block's memory, and the replay reads what was written there.
    float* other = static_cast<float*>(ex.alloc(n * sizeof(float), "other"));
    ex.upload(other, std::vector<float>(n, 7.f).data(), n * sizeof(float));
    ex.replay(id);
    CHECK(from_dev(out, n) == h);
}

TEST_CASE("cuda: graph capture replays queued ops with device-side inputs", "[cuda]") {
    CudaExecutor& ex = gpu();
    const int64_t n = 1000;
    float* x = to_dev(std::vector<float>(n, 1.f));
    float* y = to_dev(std::vector<float>(n, 0.5f));
    ex.capture_begin();
    ex.add(x, y, n);
    ex.add(x, y, n);
    const int id = ex.capture_end();
    CHECK(from_dev(x, n) == std::vector<float>(n, 1.f));  // captured, not run
    ex.replay(id);
    ex.replay(id);
    CHECK(from_dev(x, n) == std::vector<float>(n, 3.f));
    std::vector<float> y2(n, 0.25f);
    ex.upload(y, y2.data(), n * 4);
    ex.replay(id);
    CHECK(from_dev(x, n) == std::vector<float>(n, 3.5f));
    CHECK_THROWS_WITH(ex.replay(id + 100), Catch::Contains("cuda: replay of graph " + std::to_string(id + 100)));
}

TEST_CASE("cuda: copy and fill_zero are ordered with the ops and can be captured", "[cuda]") {
    CudaExecutor& ex = gpu();
    std::mt19937 rng(fresh_seed());
    const int64_t n = 3001;
    const auto a = rand_vec(rng, size_t(n)), y = rand_vec(rng, size_t(n));
    float* x = to_dev(a);
    float* dy = to_dev(y);
    float* dst = to_dev(rand_vec(rng, size_t(2 * n)));
    // x += y; dst[n..] = x; x = 0; dst[..n] = x + y (the copy sees the add before it, the fill the copy before it)
    auto ops = [&] {
        ex.add(x, dy, n);
        ex.copy(dst + n, x, size_t(n) * 4);
        ex.fill_zero(x, size_t(n) * 4);
        ex.add(x, dy, n);
        ex.copy(dst, x, size_t(n) * 4);
    };
    std::vector<float> sum(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) sum[size_t(i)] = a[size_t(i)] + y[size_t(i)];
    ops();
    auto got = from_dev(dst, size_t(2 * n));
    CHECK(std::vector<float>(got.begin(), got.begin() + n) == y);
    CHECK(std::vector<float>(got.begin() + n, got.end()) == sum);
    ex.upload(x, a.data(), a.size() * 4);
    ex.fill_zero(dst, size_t(2 * n) * 4);
    ex.capture_begin();
    ops();
    const int id = ex.capture_end();
    CHECK(from_dev(dst, size_t(2 * n)) == std::vector<float>(size_t(2 * n), 0.f));  // captured, not run
    ex.replay(id);
    got = from_dev(dst, size_t(2 * n));
    CHECK(std::vector<float>(got.begin(), got.begin() + n) == y);
    CHECK(std::vector<float>(got.begin() + n, got.end()) == sum);
    ex.copy(dst, x, 0);  // empty: nothing to do
    ex.fill_zero(dst, 0);
    ex.synchronize();
}

// bench.ablate's mechanism: the kernel nodes of a captured graph carry their kernels' names (imp's and cuBLAS's), and
// switching some off in the instantiated graph skips exactly those on replay; switching all back on restores it.
// An executor of its own: set_graph_kernels acts on every graph the executor captured.
TEST_CASE("cuda: kernel nodes of a captured graph are named and can be switched off and on", "[cuda]") {
    CudaExecutor ex(0);
    std::mt19937 rng(fresh_seed());
    const int64_t n = 1000, m = 64;
    float* x = to_dev(std::vector<float>(n, 1.f));
    float* y = to_dev(std::vector<float>(n, 0.5f));
    const auto g = rand_vec(rng, size_t(n), -4.f, 4.f), u = rand_vec(rng, size_t(n));
    float* dg = to_dev(g);
    float* du = to_dev(u);
    float* out = to_dev(std::vector<float>(n, 0.f));
    float* a = to_dev(rand_vec(rng, size_t(m * m)));
    float* c = to_dev(std::vector<float>(size_t(m * m), 0.f));
    std::vector<float> want(n);
    cpu().swiglu(g.data(), n, u.data(), n, want.data(), 1, n);
    ex.capture_begin();
    ex.add(x, y, n);
    ex.swiglu(dg, n, du, n, out, 1, n);
    const float one = 1.f, zero = 0.f;  // c = a a, by cuBLAS on the executor's stream
    REQUIRE(cublasSgemm(static_cast<cublasHandle_t>(ex.cuda()->cublas), CUBLAS_OP_N, CUBLAS_OP_N, int(m), int(m),
                        int(m), &one, a, int(m), a, int(m), &zero, c, int(m)) == CUBLAS_STATUS_SUCCESS);
    const int id = ex.capture_end();
    const auto names = ex.graph_kernel_names(id);
    REQUIRE(names.size() >= 3);
    auto count = [&](const char* part) {
        return std::count_if(names.begin(), names.end(),
                             [&](const std::string& s) { return s.find(part) != std::string::npos; });
    };
    CHECK(count("add_kernel") == 1);
    CHECK(count("swiglu_kernel") == 1);
    std::string all;
    for (const auto& s : names) all += "\n  " + s;
    INFO("kernels:" << all);
    CHECK(count("?") == 0);  // cuBLAS's kernel is named too
    CHECK(ex.set_graph_kernels("no_such_kernel", false) == 0);
    CHECK(ex.set_graph_kernels("add_kernel", false) == 1);
    ex.replay(id);
    ex.synchronize();
    CHECK(from_dev(x, n) == std::vector<float>(n, 1.f));  // skipped
    CHECK(max_rel_err(from_dev(out, size_t(n)), want) <= 1e-6);  // ran
    CHECK(ex.set_graph_kernels("", true) == int(names.size()));
    ex.replay(id);
    ex.synchronize();
    CHECK(from_dev(x, n) == std::vector<float>(n, 1.5f));
    CHECK_THROWS_WITH(ex.graph_kernel_names(id + 5), Catch::Contains("cuda: graph " + std::to_string(id + 5)));
}

// A switched-off kernel between a writer and its reader keeps their order (its stand-in waits like every kernel of
// a PDL chain): the reader sees the writer's values on every replay. Large rows, so that a reader started early
// would catch the writer mid-way.
TEST_CASE("cuda: a switched-off graph kernel keeps the order of the kernels around it", "[cuda]") {
    CudaExecutor ex(0);
    REQUIRE(ex.pdl());  // the order this checks is the programmatic one (sm_90+)
    const int64_t n = int64_t(1) << 22;
    float* x = to_dev(std::vector<float>(size_t(n), 1.f));
    float* y = to_dev(std::vector<float>(size_t(n), 0.5f));
    float* z = to_dev(std::vector<float>(size_t(n), 0.f));
    float* out = to_dev(std::vector<float>(size_t(n), 0.f));
    ex.capture_begin();
    ex.rms_norm(y, nullptr, x, n / 1024, 1024, 0.f);    // x = y / rms(y) = 1 (writer)
    ex.add(z, y, n);                                    // switched off
    ex.swiglu(x, n, x, n, out, 1, n);                   // out = silu(x) * x (reader)
    const int id = ex.capture_end();
    CHECK(ex.set_graph_kernels("add_kernel", false) == 1);
    const float want = 1.f / (1.f + std::exp(-1.f));
    for (int rep = 0; rep < 20; ++rep) {
        INFO("replay " << rep);
        ex.fill_zero(x, size_t(n) * 4);
        ex.fill_zero(out, size_t(n) * 4);
        ex.replay(id);
        ex.synchronize();
        const auto got = from_dev(out, size_t(n));
        int64_t bad = 0;
        for (float v : got) bad += std::fabs(v - want) > 1e-6f;
        CHECK(bad == 0);
        CHECK(from_dev(z, 4) == std::vector<float>(4, 0.f));  // the switched-off kernel did not run
    }
    CHECK(ex.set_graph_kernels("", true) == 3);
}
