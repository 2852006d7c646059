// Kernel timings (hidden: run with "[.bench]"): wall time per call over many calls on the executor's stream.
#include <chrono>
#include <cstdio>
#include <functional>

#include "exec/cuda/step_test_util.h"

using namespace imp;
using namespace imp::cuda_test;

TEST_CASE("cuda bench: kernel timings", "[.bench]") {
    std::mt19937 rng(1);
    CudaExecutor& ex = gpu();
    std::printf("device: %s\n", ex.name().c_str());
    const int64_t n_head = 32, n_kv = 8, hd = 128, width = n_kv * hd;
    for (int64_t ctx : {int64_t(512), int64_t(4096), int64_t(32768)}) {
        // One sequence of ctx positions: the decode step (one row at ctx - 1) and the prefill step (512 rows at
        // the end) use the same blocks.
        const int32_t c = int32_t(ctx);
        const Step dec_st = make_step({{c - 1, 1}}, 0, rng, 0);
        Step pre_st = make_step({{c - 512, 512}}, 0, rng, 0);
        pre_st.tables = dec_st.tables;
        for (int32_t i = 0; i < 512; ++i) pre_st.slots[size_t(i)] = dec_st.slot_of(0, c - 512 + i);
        pre_st.upload();
        KVCacheView kv;
        kv.dtype = DType::BF16;
        kv.n_blocks = dec_st.n_blocks;
        kv.n_kv_heads = int(n_kv);
        kv.head_dim = int(hd);
        kv.k = ex.alloc(size_t(kv.n_blocks * 16 * width * 2), "K");
        kv.v = ex.alloc(size_t(kv.n_blocks * 16 * width * 2), "V");
        const auto hk = rand_vec(rng, size_t(ctx * width));
        std::vector<int32_t> slots(dec_st.hist_slots);
        slots.push_back(dec_st.slots[0]);
        float* dk = to_dev(hk);
        ex.kv_store(kv, dk, width, dk, width, to_dev(slots), ctx);
        float* q = to_dev(rand_vec(rng, size_t(512 * n_head * hd)));
        float* out = to_dev(std::vector<float>(size_t(512 * n_head * hd)));
        AttentionParams p;
        p.n_head = int(n_head);
        p.n_kv_head = int(n_kv);
        p.head_dim = int(hd);
        p.scale = 0.088f;
        const StepBatch db = dec_st.batch(true), pb = pre_st.batch(true);
        const double dec = time_us([&] { ex.attention(q, n_head * hd, kv, out, p, db); }, 200);
        const double bytes = double(ctx) * width * 2 * 2;
        std::printf("decode attention bf16 32/8x128 ctx %6ld: %8.2f us  (%.0f GB/s of KV)\n", long(ctx), dec,
                    bytes / dec * 1e-3);
        const double pre = time_us([&] { ex.attention(q, n_head * hd, kv, out, p, pb); }, 10);
        const double flops = 4.0 * 512 * double(ctx - 256) * hd * n_head;
        std::printf("prefill attention bf16 512 tok at ctx %6ld: %9.1f us  (%.1f TFLOP/s)\n", long(ctx), pre,
                    flops / pre * 1e-6);
    }
    float* x = to_dev(rand_vec(rng, size_t(512 * 4096)));
    float* w = to_dev(rand_vec(rng, 4096));
    std::printf("rms_norm 1x4096: %.2f us, 512x4096: %.2f us\n",
                time_us([&] { ex.rms_norm(x, w, x, 1, 4096, 1e-6f); }, 500),
                time_us([&] { ex.rms_norm(x, w, x, 512, 4096, 1e-6f); }, 100));
    float* logits = to_dev(rand_vec(rng, 151936, -5.f, 5.f));
    int32_t* tok = to_dev(std::vector<int32_t>(32, 0));
    SampleRow sp;
    std::printf("sample greedy 151936: %.2f us\n",
                time_us([&] { ex.sample(logits, 0, 1, 151936, &sp, nullptr, tok); }, 200));
    const std::vector<SampleRow> greedy32(32);
    std::printf("sample greedy 32 rows x 151936 (one row of logits, stride 0): %.2f us\n",
                time_us([&] { ex.sample(logits, 0, 32, 151936, greedy32.data(), nullptr, tok); }, 200));
    sp.p.temperature = 0.8f;
    sp.p.top_k = 40;
    std::printf("sample top-k 40 151936: %.2f us\n",
                time_us([&] { ex.sample(logits, 0, 1, 151936, &sp, nullptr, tok); }, 100));
    sp.p.top_k = 0;
    sp.p.top_p = 0.9f;
    std::printf("sample top-p 0.9 151936: %.2f us\n",
                time_us([&] { ex.sample(logits, 0, 1, 151936, &sp, nullptr, tok); }, 100));
}

// The non-matmul kernels of an 8B Llama/Qwen3 decode step (32 layers, q/k norm, BF16 KV at context 4096), as a
// captured graph: the attention prologue as five ops or as rope_kv_store, with PDL off and on.
TEST_CASE("cuda bench: decode-step chain without matmuls, fused prologue and PDL", "[.bench]") {
    std::mt19937 rng(2);
    CudaExecutor& ex = gpu();
    std::printf("device: %s\n", ex.name().c_str());
    const bool saved = ex.pdl();
    const int n_head = 32, n_kv = 8, hd = 128, layers = 32;
    const int64_t embd = 4096, ff = 14336, qd = n_head * hd, kd = n_kv * hd, ctx = 4096;
    const Step st = make_step({{int32_t(ctx) - 1, 1}}, 0, rng, 0);
    const StepBatch b = st.batch(true);
    KVCacheView kv;
    kv.dtype = DType::BF16;
    kv.n_blocks = st.n_blocks;
    kv.n_kv_heads = n_kv;
    kv.head_dim = hd;
    kv.k = ex.alloc(size_t(kv.n_blocks * 16 * kd * 2), "K");
    kv.v = ex.alloc(size_t(kv.n_blocks * 16 * kd * 2), "V");
    float* hidden = to_dev(rand_vec(rng, size_t(embd)));
    float* xn = to_dev(rand_vec(rng, size_t(embd)));
    float* w = to_dev(rand_vec(rng, size_t(embd), 0.5f, 1.5f));
    float* nw = to_dev(rand_vec(rng, size_t(hd), 0.5f, 1.5f));
    float* q = to_dev(rand_vec(rng, size_t(qd)));
    float* k = to_dev(rand_vec(rng, size_t(kd)));
    float* v = to_dev(rand_vec(rng, size_t(kd)));
    float* att = to_dev(rand_vec(rng, size_t(qd)));
    float* g = to_dev(rand_vec(rng, size_t(2 * ff)));
    RopeParams rp;
    rp.head_dim = hd;
    rp.n_rot = hd;
    rp.base = 1000000.f;
    rp.neox = true;
    AttentionParams ap;
    ap.n_head = n_head;
    ap.n_kv_head = n_kv;
    ap.head_dim = hd;
    ap.scale = 0.088f;
    for (bool fused : {false, true}) {
        for (bool pdl : {false, true}) {
            ex.set_pdl(pdl);
            ex.capture_begin();
            for (int l = 0; l < layers; ++l) {
                ex.rms_norm(hidden, w, xn, 1, embd, 1e-6f);
                if (fused) {
                    ex.rope_kv_store(q, qd, k, kd, v, kd, nw, nw, 1e-6f, b, n_head, n_kv, rp, kv);
                } else {
                    ex.rms_norm(q, nw, q, n_head, hd, 1e-6f);
                    ex.rms_norm(k, nw, k, n_kv, hd, 1e-6f);
                    ex.rope(q, qd, b.token_pos, 1, n_head, rp);
                    ex.rope(k, kd, b.token_pos, 1, n_kv, rp);
                    ex.kv_store(kv, k, kd, v, kd, b.slot_mapping, 1);
                }
                ex.attention(q, qd, kv, att, ap, b);
                ex.add(hidden, att, embd);
                ex.rms_norm(hidden, w, xn, 1, embd, 1e-6f);
                ex.swiglu(g, ff, g + ff, ff, g, 1, ff);
                ex.add(hidden, xn, embd);
            }
            const int graph = ex.capture_end();
            const double us = time_us([&] { ex.replay(graph); }, 50);
            std::printf("decode chain x%d layers, %s prologue, PDL %s: %8.1f us per step\n", layers,
                        fused ? "fused" : "5-op", ex.pdl() ? "on " : "off", us);
        }
    }
    ex.set_pdl(saved);
}
