// Out-of-line parts of the SDK's layer and executor types: recurrent-state slot layout, default device copies.
#include <vector>

#include "imp/error.h"
#include "imp/executor.h"
#include "imp/layer.h"

namespace imp {

uint64_t StateSpec::component_bytes(size_t i) const {
    if (i >= components.size()) throw Error("state component " + std::to_string(i) + " of " + std::to_string(components.size()));
    const StateComponent& c = components[i];
    uint64_t n = 1;
    for (auto d : c.shape) {
        if (d <= 0) throw Error("state component '" + c.name + "' has a non-positive dimension " + std::to_string(d));
        n = checked_mul(n, uint64_t(d), "state component");
    }
    return checked_mul(n, dtype_size(c.dtype), "state component");
}

uint64_t StateSpec::component_offset(size_t i) const {
    uint64_t off = 0;
    for (size_t j = 0; j < i; ++j) off += (component_bytes(j) + kAlign - 1) / kAlign * kAlign;
    return off;
}

uint64_t StateSpec::slot_bytes() const {
    return components.empty() ? 0 : component_offset(components.size() - 1) +
                                        (component_bytes(components.size() - 1) + kAlign - 1) / kAlign * kAlign;
}

void Executor::copy(void* dst, const void* src, size_t bytes) {
    std::vector<uint8_t> host(bytes);
    download(host.data(), src, bytes);
    upload(dst, host.data(), bytes);
}

void Executor::fill_zero(void* dst, size_t bytes) {
    std::vector<uint8_t> zeros(bytes, 0);
    upload(dst, zeros.data(), bytes);
}

}  // namespace imp
