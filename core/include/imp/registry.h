// imp SDK: what plugins register into: archs, quant formats, layer kinds (by name, so one plugin can build its
// models from another plugin's layers, e.g. arch_gdn using arch_qwen_moe's MoE layer) and ops (imp/ops.h: kernels
// per device kind that layers call).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "imp/arch.h"
#include "imp/export.h"
#include "imp/layer.h"
#include "imp/ops.h"
#include "imp/quant_format.h"
#include "imp/settings.h"

namespace imp {

using LayerFactory = std::function<std::unique_ptr<Layer>(const LayerParams&)>;

class IMP_API Registry {
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
    // Builds a layer of a registered kind, with p.registry set to this registry; throws imp::Error naming the kind
    // and the kinds available.
    std::unique_ptr<Layer> make_layer(const std::string& kind, const LayerParams& p) const;
    bool has_layer_kind(const std::string& kind) const;

    // ---- ops (imp/ops.h)
    // Registers the kernel of op Op for device kind d (a CPU reference, a CUDA kernel, ...). A second kernel for the
    // same (op, device), or kernels of one op with different Args types, is an imp::Error naming both plugins.
    template <class Op>
    void add_op(DeviceKind d, void (*kernel)(Executor&, const typename Op::Args&), OpSupports supports = {}) {
        add_op_entry(Op::name, d, reinterpret_cast<void (*)()>(kernel), typeid(typename Op::Args).name(),
                     sizeof(typename Op::Args), std::move(supports));
    }
    // Registers the conformance check of an op (imp/ops.h: OpCheck); one per op.
    void add_op_check(const std::string& op, OpCheck check);

    // ---- settings (imp/settings.h): a plugin declares its keys while it registers; the core's are under "core".
    void add_setting(SettingSpec spec);
    // The settings of a loaded plugin (or "core"): declared keys with the profile's values or the defaults. Throws
    // imp::Error for a name that is neither.
    const Settings& settings(const std::string& plugin) const;
    // Sets one key of a plugin's settings (the engine applies the profile's [plugin.<name>] tables through this).
    // Throws imp::Error naming the plugin and key: no such plugin, unknown key, wrong type, bad value.
    void configure(const std::string& plugin, const std::string& key, const SettingValue& value);
    std::vector<const Settings*> all_settings() const;  // "core" first, then plugins in load order
    // The plugin that registered a format / arch / layer kind ("core" for the core's own), or "" when none did.
    std::string plugin_of(const std::string& what, const std::string& name) const;
    // The op's kernels, resolved once; throws imp::Error when no loaded plugin registered the op, or registered it
    // with another Args type.
    template <class Op>
    OpRef<Op> op() const {
        OpRef<Op> r;
        resolve_op(Op::name, typeid(typename Op::Args).name(), sizeof(typename Op::Args), r.entries_.data());
        return r;
    }
    const OpEntry* find_op(const std::string& name, DeviceKind d) const;  // null when absent
    std::vector<const OpEntry*> ops() const;                              // by op name, then device kind
    const OpCheckEntry* find_op_check(const std::string& op) const;       // null when absent
    std::vector<const OpCheckEntry*> op_checks() const;                   // by op name
    // "" when every op in `names` has a kernel for ex.kind() that supports ex; else one line naming each op that
    // has not: "op 'x' is not available on cuda (provided for: cpu by plugin 'y')". The engine calls it with the
    // layers' required ops before any weight is loaded.
    std::string check_ops(const std::vector<std::string>& names, const Executor& ex) const;
    // ---- end ops

    // What each plugin registered (for `imp plugins` and error messages). The loader sets the current plugin
    // name before calling a plugin's register function.
    struct Entry {
        std::string plugin;
        std::string what;  // "arch", "format", "layer", "op"
        std::string name;
        std::string detail;  // arch: architectures served; format: types (and priority when not 0); op: device kind
    };
    const std::vector<Entry>& entries() const;
    void set_current_plugin(const std::string& name);
    const std::vector<const Arch*> archs() const;
    const std::vector<const QuantFormat*> formats() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;

    // ---- ops (core/src/util/registry_ops.cpp)
    struct OpTable;
    std::unique_ptr<OpTable> ops_;
    void add_op_entry(const char* name, DeviceKind d, void (*kernel)(), const char* args_type, size_t args_size,
                      OpSupports supports);
    void resolve_op(const char* name, const char* args_type, size_t args_size, const OpEntry** out) const;
    const std::string& current_plugin() const;
    void add_entry(Entry e);
};

}  // namespace imp
