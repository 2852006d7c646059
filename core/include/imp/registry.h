// imp SDK: what plugins register into: archs, quant formats, and layer kinds (by name, so one plugin can build
// its models from another plugin's layers, e.g. arch_gdn using arch_qwen_moe's MoE layer).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "imp/arch.h"
#include "imp/layer.h"
#include "imp/quant_format.h"

namespace imp {

using LayerFactory = std::function<std::unique_ptr<Layer>(const LayerParams&)>;

class Registry {
public:
    Registry();
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    void add_arch(std::unique_ptr<Arch> a);
    // Throws imp::Error when a format of the same name is already registered (naming both plugins).
    void add_format(std::unique_ptr<QuantFormat> f);
    void add_layer_kind(const std::string& name, LayerFactory f);

    // First arch whose matches() is true, or null.
    const Arch* find_arch(const ModelSource& src) const;
    // The format registered under `name`, or null. Which format takes a weight is the engine's choice
    // (quant_format.h: plan, priority, the profile's [model] formats).
    const QuantFormat* find_format(const std::string& name) const;
    // Builds a layer of a registered kind; throws imp::Error naming the kind and the kinds available.
    std::unique_ptr<Layer> make_layer(const std::string& kind, const LayerParams& p) const;
    bool has_layer_kind(const std::string& kind) const;

    // What each plugin registered (for `imp plugins` and error messages). The loader sets the current plugin
    // name before calling a plugin's register function.
    struct Entry {
        std::string plugin;
        std::string what;  // "arch", "format", "layer"
        std::string name;
        std::string detail;  // arch: architectures served; format: types (and priority when not 0)
    };
    const std::vector<Entry>& entries() const;
    void set_current_plugin(const std::string& name);
    const std::vector<const Arch*> archs() const;
    const std::vector<const QuantFormat*> formats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace imp
