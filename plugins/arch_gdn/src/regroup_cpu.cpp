// arch_gdn: the CPU kernel of gdn.regroup (regroup_op.h).
#include <cstring>

#include "regroup_op.h"

namespace imp::gdn_arch {

namespace {

void regroup_cpu(Executor& ex, const Regroup::Args& a) {
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

}  // namespace

void register_regroup_cpu(Registry& reg) {
    if (!reg.find_op(Regroup::name, DeviceKind::CPU)) reg.add_op<Regroup>(DeviceKind::CPU, regroup_cpu);
}

}  // namespace imp::gdn_arch
