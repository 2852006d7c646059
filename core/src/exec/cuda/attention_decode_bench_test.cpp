// Decode attention timings, split-KV path vs one-kernel decode (attention_decode.cuh, 8- and 4-warp CTAs) in one
// run (hidden: run with "[.bench]"): a decode step of 1 to 128 sequences (contexts above 4096 up to 32), each with one row at position ctx - 1,
// 8B shape (32 heads, 8 KV heads, head_dim 128) and the Qwen3.6 full-attention shape (16 heads, 2 KV heads,
// head_dim 256, AttnOptions::decode_hd256 on), BF16 KV in 16-position blocks, every sequence its own blocks
// shuffled through the pool, block tables of 1024 positions for ctx <= 1024, else ctx. Prints per path the time
// per call issued back to back on the executor's stream, and per call of a captured graph of 32 calls (a decode
// step's attention calls without launch overhead), the KV rate of the graph time, the speedup over split-KV, and the
// largest relative difference to the split-KV output.
#include <algorithm>
#include <cstdio>
#include <tuple>
#include <vector>

#include "exec/cuda/attention_decode.h"
#include "exec/cuda/step_test_util.h"

using namespace imp;
using namespace imp::cuda_test;

TEST_CASE("cuda bench: decode attention, split-KV vs one-kernel decode", "[.bench]") {
    std::mt19937 rng(1);
    CudaExecutor& ex = gpu();
    std::printf("device: %s\n", ex.name().c_str());
    const bool old_default = gpu().attention_options().decode_split;
    const bool old_hd256 = gpu().attention_options().decode_hd256;
    gpu().attention_options().decode_hd256 = true;
    constexpr int kCalls = 32;
    for (const auto& [n_head, n_kv, hd] : std::vector<std::tuple<int, int, int>>{{32, 8, 128}, {16, 2, 256}})
    for (int n_seqs : {1, 8, 16, 32, 64, 128})
        for (int64_t ctx : {64, 128, 512, 1024, 4096, 32768}) {
            if (ctx > 4096 && n_seqs > 32) continue;  // (KV pools of 8-17 GB)
            const int64_t width = int64_t(n_kv) * hd, qn = int64_t(n_head) * hd;
            const int32_t cap = int32_t(std::max<int64_t>(ctx, 1024));
            Step st = make_step(std::vector<SeqSpec>(size_t(n_seqs), SeqSpec{int32_t(ctx) - 1, 1}),
                                cap / 16 - int32_t((ctx + 15) / 16), rng, 0);
            KVCacheView kv;
            kv.dtype = DType::BF16;
            kv.n_blocks = st.n_blocks;
            kv.n_kv_heads = n_kv;
            kv.head_dim = hd;
            kv.block_size = 16;
            kv.k = ex.alloc(size_t(st.n_blocks * 16 * width * 2), "bench K");
            kv.v = ex.alloc(size_t(st.n_blocks * 16 * width * 2), "bench V");
            if (n_seqs == 1) {  // random history (the batched cases keep the zero-filled pool: same work)
                float* dk = to_dev(rand_vec(rng, size_t(ctx * width), -2.f, 2.f));
                float* dv = to_dev(rand_vec(rng, size_t(ctx * width), -2.f, 2.f));
                std::vector<int32_t> slots(st.hist_slots);
                slots.push_back(st.slots[0]);
                ex.kv_store(kv, dk, width, dv, width, to_dev(slots), ctx);
            }
            float* q = to_dev(rand_vec(rng, size_t(n_seqs * qn), -3.f, 3.f));
            float* out = to_dev(std::vector<float>(size_t(n_seqs * qn)));
            AttentionParams p;
            p.n_head = n_head;
            p.n_kv_head = n_kv;
            p.head_dim = hd;
            p.scale = 1.f / std::sqrt(float(hd));
            const StepBatch b = st.batch(true);
            double direct[3], graphed[3];
            std::vector<float> res[3];
            for (int v = 0; v < 3; ++v) {  // 0: split-KV, 1: one-kernel decode with 8 warps, 2: with 4 warps
                gpu().attention_options().decode_split = v == 0;
                gpu().attention_options().decode_one_any_grid = v > 0;  // whatever the default rule would take
                gpu().attention_options().decode_warps = v == 2 ? 4 : 8;
                direct[v] = time_us([&] { ex.attention(q, qn, kv, out, p, b); }, 500);
                res[v] = from_dev(out, size_t(n_seqs * qn));
                ex.capture_begin();
                for (int i = 0; i < kCalls; ++i) ex.attention(q, qn, kv, out, p, b);
                const int graph = ex.capture_end();
                graphed[v] = time_us([&] { ex.replay(graph); }, 50) / kCalls;
            }
            gpu().attention_options().decode_split = old_default;
            gpu().attention_options().decode_one_any_grid = false;
            gpu().attention_options().decode_warps = 0;
            const double bytes = double(n_seqs) * double(ctx) * width * 2 * 2;
            std::printf("decode attention bf16 %d/%dx%d %2d seq ctx %6ld (table %6d): split-KV %7.2f us, graph %7.2f "
                        "us (%5.0f GB/s) | one-kernel 8 warps %7.2f us, graph %7.2f us (%5.0f GB/s, x%.2f) | 4 warps "
                        "%7.2f us, graph %7.2f us (x%.2f) | max rel diff 8w %.1e 4w %.1e\n",
                        n_head, n_kv, hd, n_seqs, long(ctx), cap, direct[0], graphed[0], bytes / graphed[0] * 1e-3, direct[1],
                        graphed[1], bytes / graphed[1] * 1e-3, graphed[0] / graphed[1], direct[2], graphed[2],
                        graphed[0] / graphed[2], max_rel_err(res[1], res[0]), max_rel_err(res[2], res[0]));
        }
    gpu().attention_options().decode_hd256 = old_hd256;
}
