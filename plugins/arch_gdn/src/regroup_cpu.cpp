// arch_gdn: gdn.regroup's CPU kernel (the reference), argument checks, conformance check and registration
// (regroup_op.h).
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "imp/error.h"
#include "regroup_op.h"

namespace imp::gdn_arch {

int64_t regroup_cols(const Regroup::Args& a) {
    return a.mode == 0 ? 2 * a.dims.key_dim() + 2 * a.dims.value_dim() : 2 * int64_t(a.dims.n_v_heads);
}

void validate_regroup(const Regroup::Args& a) {
    const gdn::Dims& d = a.dims;
    const std::string me = Regroup::name;
    if (d.n_k_heads <= 0 || d.n_v_heads <= 0 || d.head_k_dim <= 0 || d.head_v_dim <= 0 ||
        d.n_v_heads % d.n_k_heads != 0)
        throw Error(me + ": invalid dims (heads " + std::to_string(d.n_k_heads) + "/" + std::to_string(d.n_v_heads) +
                    ", head dims " + std::to_string(d.head_k_dim) + "/" + std::to_string(d.head_v_dim) + ")");
    if (a.mode != 0 && a.mode != 1) throw Error(me + ": mode " + std::to_string(a.mode) + " (0: qkvz, 1: ba)");
    if (a.n_tokens < 0) throw Error(me + ": n_tokens " + std::to_string(a.n_tokens));
    if (a.n_tokens > 0 && (!a.x || !a.y)) throw Error(me + ": null x or y");
    const int64_t cols = regroup_cols(a);
    if (a.x_stride < cols || a.y_stride < cols)
        throw Error(me + ": row strides " + std::to_string(a.x_stride) + " / " + std::to_string(a.y_stride) +
                    " below the " + std::to_string(cols) + " columns of a row");
}

void regroup_cpu(Executor& ex, const Regroup::Args& a) {
    validate_regroup(a);
    const gdn::Dims& d = a.dims;
    const int64_t hk = d.n_k_heads, dk = d.head_k_dim, dv = d.head_v_dim, R = d.n_v_heads / d.n_k_heads;
    const int64_t kd = d.key_dim(), vd = d.value_dim();
    ex.parallel_for(a.n_tokens, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const float* x = a.x + t * a.x_stride;
            float* y = a.y + t * a.y_stride;
            for (int64_t g = 0; g < hk; ++g) {
                if (a.mode == 0) {
                    const float* xg = x + g * (2 * dk + 2 * R * dv);
                    std::memcpy(y + g * dk, xg, size_t(dk) * 4);
                    std::memcpy(y + kd + g * dk, xg + dk, size_t(dk) * 4);
                    std::memcpy(y + 2 * kd + g * R * dv, xg + 2 * dk, size_t(R * dv) * 4);
                    std::memcpy(y + 2 * kd + vd + g * R * dv, xg + 2 * dk + R * dv, size_t(R * dv) * 4);
                } else {
                    const float* xg = x + g * 2 * R;
                    std::memcpy(y + g * R, xg, size_t(R) * 4);
                    std::memcpy(y + d.n_v_heads + g * R, xg + R, size_t(R) * 4);
                }
            }
        }
    });
}

std::string check_regroup(Executor& cpu, Executor& dev, uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    for (int mode : {0, 1}) {
        Regroup::Args a;
        a.dims.n_k_heads = pick(1, 4);
        a.dims.n_v_heads = a.dims.n_k_heads * pick(1, 4);
        a.dims.head_k_dim = pick(1, 40);
        a.dims.head_v_dim = pick(1, 40);
        a.mode = mode;
        a.n_tokens = pick(1, 37);
        const int64_t cols = regroup_cols(a);
        a.x_stride = cols + pick(0, 9);
        a.y_stride = cols + pick(0, 9);
        std::vector<float> x(size_t(a.n_tokens * a.x_stride)), y0(size_t(a.n_tokens * a.y_stride), -7.f);
        std::normal_distribution<float> nd(0.f, 1.f);
        for (auto& v : x) v = nd(rng);
        std::vector<float> out[2];
        Executor* exs[2] = {&cpu, &dev};
        for (int k = 0; k < 2; ++k) {
            Executor& ex = *exs[k];
            auto* dx = static_cast<float*>(ex.alloc(x.size() * 4, "gdn.regroup.check"));
            auto* dy = static_cast<float*>(ex.alloc(y0.size() * 4, "gdn.regroup.check"));
            ex.upload(dx, x.data(), x.size() * 4);
            ex.upload(dy, y0.data(), y0.size() * 4);
            Regroup::Args b = a;
            b.x = dx;
            b.y = dy;
            (k == 0 ? regroup_cpu : regroup_cuda)(ex, b);
            ex.synchronize();
            out[k].resize(y0.size());
            ex.download(out[k].data(), dy, y0.size() * 4);
        }
        // a gather: exact, and the padding columns of y untouched
        const std::string r = compare_close(std::string("y (mode ") + std::to_string(mode) + ")", out[0].data(),
                                            out[1].data(), out[0].size(), 0.f, 0.f);
        if (!r.empty()) return r;
    }
    return "";
}

void register_regroup(Registry& reg) {
    if (reg.find_op(Regroup::name, DeviceKind::CPU)) return;
    reg.add_op<Regroup>(DeviceKind::CPU, regroup_cpu);
    reg.add_op<Regroup>(DeviceKind::CUDA, regroup_cuda,
                        [](const Executor& ex) { return ex.cuda() != nullptr && ex.cuda()->cc >= 90; });
    reg.add_op_check(Regroup::name, check_regroup);
}

}  // namespace imp::gdn_arch
