#include "imp/registry.h"

#include <deque>
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
    std::deque<Settings> settings;  // (stable references) "core" first, then one per plugin in load order
    Settings* find_settings(const std::string& plugin) {
        for (auto& s : settings)
            if (s.plugin() == plugin) return &s;
        return nullptr;
    }
};

void declare_core_settings(Settings& s);  // core_settings.cpp

Registry::Registry() : impl_(std::make_unique<Impl>()), ops_(std::make_unique<OpTable>()) {
    impl_->settings.emplace_back("core");
    declare_core_settings(impl_->settings.back());
}
Registry::~Registry() = default;

void Registry::set_current_plugin(const std::string& name) {
    impl_->current = name;
    if (!impl_->find_settings(name)) impl_->settings.emplace_back(name);
}

void Registry::add_setting(SettingSpec spec) {
    Settings* s = impl_->find_settings(impl_->current);
    if (!s) s = &impl_->settings.emplace_back(impl_->current);
    s->declare(std::move(spec));
}

const Settings& Registry::settings(const std::string& plugin) const {
    if (const Settings* s = impl_->find_settings(plugin)) return *s;
    std::string known;
    for (auto& s : impl_->settings) known += (known.empty() ? "" : ", ") + s.plugin();
    throw Error("[plugin." + plugin + "]: no loaded plugin is named '" + plugin + "' (loaded: " + known + ")");
}

void Registry::configure(const std::string& plugin, const std::string& key, const SettingValue& value) {
    settings(plugin);  // the error for an unknown plugin
    impl_->find_settings(plugin)->set(key, value);
}

std::vector<const Settings*> Registry::all_settings() const {
    std::vector<const Settings*> v;
    for (auto& s : impl_->settings) v.push_back(&s);
    return v;
}

std::string Registry::plugin_of(const std::string& what, const std::string& name) const {
    for (const auto& e : impl_->entries)
        if (e.what == what && e.name == name) return e.plugin;
    return "";
}

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
