#include "imp/registry.h"

#include <map>

#include "imp/error.h"
#include "util/op_table.h"

namespace imp {

struct Registry::Impl {
    std::vector<std::unique_ptr<Arch>> archs;
    std::vector<std::unique_ptr<QuantFormat>> formats;
    std::map<std::string, LayerFactory> layers;
    std::vector<Entry> entries;
    std::string current = "core";
};

Registry::Registry() : impl_(std::make_unique<Impl>()), ops_(std::make_unique<OpTable>()) {}
Registry::~Registry() = default;

void Registry::set_current_plugin(const std::string& name) { impl_->current = name; }

void Registry::add_arch(std::unique_ptr<Arch> a) {
    std::string served;
    for (auto& s : a->architectures()) served += (served.empty() ? "" : ", ") + s;
    impl_->entries.push_back({impl_->current, "arch", a->name(), served});
    impl_->archs.push_back(std::move(a));
}

void Registry::add_format(std::unique_ptr<QuantFormat> f) {
    const std::string name = f->name();
    for (const auto& e : impl_->entries)
        if (e.what == "format" && e.name == name)
            throw Error("quant format '" + name + "' registered twice (by " + e.plugin + " and " + impl_->current + ")");
    std::string types;
    for (auto& s : f->types()) types += (types.empty() ? "" : ", ") + s;
    if (f->priority() != 0) types += " (priority " + std::to_string(f->priority()) + ")";
    impl_->entries.push_back({impl_->current, "format", name, types});
    impl_->formats.push_back(std::move(f));
}

void Registry::add_layer_kind(const std::string& name, LayerFactory f) {
    if (impl_->layers.count(name)) throw Error("layer kind '" + name + "' registered twice (by " + impl_->current + ")");
    impl_->entries.push_back({impl_->current, "layer", name, ""});
    impl_->layers[name] = std::move(f);
}

const Arch* Registry::find_arch(const ModelSource& src) const {
    for (auto& a : impl_->archs)
        if (a->matches(src)) return a.get();
    return nullptr;
}

const QuantFormat* Registry::find_format(const std::string& name) const {
    for (auto& f : impl_->formats)
        if (f->name() == name) return f.get();
    return nullptr;
}

bool Registry::has_layer_kind(const std::string& kind) const { return impl_->layers.count(kind) != 0; }

std::unique_ptr<Layer> Registry::make_layer(const std::string& kind, const LayerParams& p) const {
    auto it = impl_->layers.find(kind);
    if (it == impl_->layers.end()) {
        std::string avail;
        for (auto& [k, _] : impl_->layers) avail += (avail.empty() ? "" : ", ") + k;
        throw Error("no loaded plugin provides layer kind '" + kind + "' (available: " +
                    (avail.empty() ? "none" : avail) + ")");
    }
    LayerParams q = p;
    q.registry = this;
    return it->second(q);
}

const std::vector<Registry::Entry>& Registry::entries() const { return impl_->entries; }

// ---- for the op parts (registry_ops.cpp)
const std::string& Registry::current_plugin() const { return impl_->current; }
void Registry::add_entry(Entry e) { impl_->entries.push_back(std::move(e)); }

const std::vector<const Arch*> Registry::archs() const {
    std::vector<const Arch*> r;
    for (auto& a : impl_->archs) r.push_back(a.get());
    return r;
}
const std::vector<const QuantFormat*> Registry::formats() const {
    std::vector<const QuantFormat*> r;
    for (auto& f : impl_->formats) r.push_back(f.get());
    return r;
}

}  // namespace imp
