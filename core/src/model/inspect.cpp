#include "model/inspect.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "model/display_text.h"
#include "model/gguf_reader.h"
#include "model/safetensors_reader.h"

namespace imp {

namespace {
std::string human(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = double(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, ++u;
    char b[32];
    std::snprintf(b, sizeof b, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return b;
}

std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' '); }
std::string lpad(const std::string& s, size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string base_name(const std::string& p) {
    auto k = p.find_last_of('/');
    return k == std::string::npos ? p : p.substr(k + 1);
}
}  // namespace

std::string inspect_model(const ModelSource& src) {
    std::string o;
    std::string container;
    bool multi_file = false;
    if (auto g = dynamic_cast<const GgufSource*>(&src)) {
        container = "GGUF v" + std::to_string(g->version()) + ", alignment " + std::to_string(g->alignment()) +
                    ", tensor data at offset " + std::to_string(g->data_offset());
        multi_file = g->parts() > 1;
        if (multi_file) container += ", split in " + std::to_string(g->parts()) + " files";
    } else if (auto s = dynamic_cast<const SafetensorsSource*>(&src)) {
        multi_file = s->files().size() > 1;
        container = "safetensors, " + std::to_string(s->files().size()) + (multi_file ? " files" : " file");
    } else {
        container = src.kind() == ContainerKind::GGUF ? "GGUF" : "safetensors";
    }
    const std::string arch = src.architecture();
    o += "container     " + container + "\n";
    o += "path          " + display_text(src.path(), 4096) + "\n";
    o += "size          " + std::to_string(src.file_bytes()) + " bytes (" + human(src.file_bytes()) + ")\n";
    o += "architecture  " + (arch.empty() ? std::string("(none)") : display_text(arch)) + "\n";

    const auto& kv = src.metadata().all();
    o += "metadata      " + std::to_string(kv.size()) + " keys\n";
    size_t kw = 3, tw = 4;
    for (const auto& [k, v] : kv) kw = std::max(kw, std::min<size_t>(k.size(), 60)), tw = std::max(tw, v.type.size());
    if (!kv.empty()) o += "  " + pad("KEY", kw + 2) + pad("TYPE", tw + 2) + "VALUE\n";
    // Keys, names and values come from the file: escaped (no terminal control sequences) and shortened.
    for (const auto& [k, v] : kv)
        o += "  " + pad(display_text(k), kw + 2) + pad(display_text(v.type), tw + 2) + v.to_display(8) + "\n";

    const auto& ts = src.tensors();
    o += "tensors       " + std::to_string(ts.size()) + "\n";
    size_t nw = 4, yw = 4, sw = 5, bw = 5, fw = 4;
    for (const auto& t : ts) {
        nw = std::max(nw, std::min<size_t>(t.name.size(), 72));
        yw = std::max(yw, t.type.size());
        sw = std::max(sw, shape_str(t.shape).size());
        bw = std::max(bw, std::to_string(t.nbytes).size());
        fw = std::max(fw, base_name(t.file).size());
    }
    if (!ts.empty()) {
        o += "  " + pad("NAME", nw + 2) + pad("TYPE", yw + 2) + pad("SHAPE", sw + 2) + lpad("BYTES", bw) + "  " +
             (multi_file ? pad("FILE", fw + 2) : "") + "OFFSET\n";
    }
    uint64_t total_bytes = 0, total_elems = 0;
    std::map<std::string, size_t> by_type;
    for (const auto& t : ts) {
        o += "  " + pad(display_text(t.name), nw + 2) + pad(display_text(t.type), yw + 2) + pad(shape_str(t.shape), sw + 2) +
             lpad(std::to_string(t.nbytes), bw) + "  " + (multi_file ? pad(base_name(t.file), fw + 2) : "") +
             std::to_string(t.file_offset) + "\n";
        total_bytes += t.nbytes;
        total_elems += uint64_t(t.numel());
        ++by_type[t.type];
    }
    char share[32] = "";
    if (src.file_bytes())
        std::snprintf(share, sizeof share, multi_file ? " (%.1f%% of the files)" : " (%.1f%% of the file)",
                      100.0 * double(total_bytes) / double(src.file_bytes()));
    o += "total         " + std::to_string(ts.size()) + " tensors, " + std::to_string(total_elems) + " elements, " +
         std::to_string(total_bytes) + " bytes" + share + "\n";
    if (!by_type.empty()) {
        o += "by type      ";
        const char* sep = " ";
        for (const auto& [type, n] : by_type) o += sep + type + " x" + std::to_string(n), sep = ", ";
        o += "\n";
    }
    return o;
}

}  // namespace imp
