// quant_nvfp4: gathering NVFP4 pieces into the canonical host layout (see nvfp4_host.h).
#include "nvfp4_host.h"

#include <cstring>

namespace imp::nvfp4 {

HostNvfp4 gather(const Layout& l) {
    HostNvfp4 h;
    for (size_t i = 0; i < l.pieces.size(); i += size_t(l.parts_per_expert))
        for (float g : l.pieces[i].globals) h.globals.push_back(g);
    if (!l.experts() && l.pieces.size() > 1) h.globals.resize(1);  // parts share one (checked by layout_of)
    if (l.pieces.size() == 1) {
        h.codes = l.pieces[0].codes->data;
        h.scales = l.pieces[0].scales->data;
        return h;
    }
    for (const auto& p : l.pieces) {
        h.code_buf.insert(h.code_buf.end(), p.codes->data, p.codes->data + p.codes->nbytes);
        h.scale_buf.insert(h.scale_buf.end(), p.scales->data, p.scales->data + p.scales->nbytes);
    }
    h.codes = h.code_buf.data();
    h.scales = h.scale_buf.data();
    return h;
}

}  // namespace imp::nvfp4
