// quant_nvfp4: gathering NVFP4 pieces into the canonical host layout (see nvfp4_host.h).
#include "nvfp4_host.h"

#include <cstring>
#include <utility>

#include "load_parallel.h"

namespace imp::nvfp4 {

std::vector<float> globals_of(const Layout& l) {
    std::vector<float> g;
    for (size_t i = 0; i < l.pieces.size(); i += size_t(l.parts_per_expert))
        for (float v : l.pieces[i].globals) g.push_back(v);
    if (!l.experts() && l.pieces.size() > 1) g.resize(1);  // parts share one (checked by layout_of)
    return g;
}

HostNvfp4 gather(const Layout& l) {
    HostNvfp4 h;
    h.globals = globals_of(l);
    if (l.pieces.size() == 1) {
        h.codes = l.pieces[0].codes->data;
        h.scales = l.pieces[0].scales->data;
        return h;
    }
    std::vector<std::pair<const uint8_t*, uint64_t>> codes, scales;
    for (const auto& p : l.pieces) {
        codes.emplace_back(p.codes->data, p.codes->nbytes);
        scales.emplace_back(p.scales->data, p.scales->nbytes);
    }
    quant_hf::concat_bytes(codes, h.code_buf);
    quant_hf::concat_bytes(scales, h.scale_buf);
    h.codes = h.code_buf.data();
    h.scales = h.scale_buf.data();
    return h;
}

}  // namespace imp::nvfp4
