// The op part of the Registry (imp/ops.h, imp/registry.h): registering kernels and checks, resolving OpRefs, and
// the before-load question "can this executor run these ops?".
#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <set>

#include "imp/error.h"
#include "imp/registry.h"
#include "util/op_table.h"

namespace imp {

namespace {

// A readable type name for messages ("hello::ScaleAdd::Args"); the mangled name when it cannot be demangled.
std::string demangle(const std::string& mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> p(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status),
                                             std::free);
    return status == 0 && p ? std::string(p.get()) : mangled;
}

int index_of(DeviceKind d) { return static_cast<int>(d); }
bool valid_kind(DeviceKind d) { return index_of(d) >= 0 && index_of(d) < kDeviceKindCount; }
std::string kind_str(DeviceKind d) {
    return valid_kind(d) ? device_kind_name(d) : "device kind " + std::to_string(index_of(d));
}

// "cpu by plugin 'a', cuda by plugin 'b'", or "none".
std::string provided_for(const OpEntry* const* entries) {
    std::string r;
    for (int k = 0; k < kDeviceKindCount; ++k)
        if (entries[k])
            r += (r.empty() ? "" : ", ") + std::string(device_kind_name(static_cast<DeviceKind>(k))) + " by plugin '" +
                 entries[k]->plugin + "'";
    return r.empty() ? "none" : r;
}

std::string args_desc(const std::string& type, size_t size) {
    return demangle(type) + " (" + std::to_string(size) + " bytes)";
}

}  // namespace

const char* device_kind_name(DeviceKind d) {
    switch (d) {
        case DeviceKind::CPU: return "cpu";
        case DeviceKind::CUDA: return "cuda";
    }
    return "unknown";
}

namespace detail {

void throw_op_missing(const char* op, const OpEntry* const* entries, DeviceKind d) {
    throw Error("op '" + std::string(op) + "' has no kernel for " + kind_str(d) +
                " (provided for: " + provided_for(entries) + ")");
}

}  // namespace detail

void Registry::add_op_entry(const char* name, DeviceKind d, void (*kernel)(), const char* args_type, size_t args_size,
                            OpSupports supports) {
    const std::string op = name ? name : "";
    const std::string& plugin = current_plugin();
    if (op.empty()) throw Error("plugin '" + plugin + "' registers an op with an empty name");
    if (!valid_kind(d)) throw Error("op '" + op + "' (plugin '" + plugin + "'): unknown " + kind_str(d));
    if (!kernel) throw Error("op '" + op + "' (plugin '" + plugin + "'): null " + kind_str(d) + " kernel");
    auto& slots = ops_->kernels[op];
    if (slots[index_of(d)])
        throw Error("op '" + op + "' has two " + kind_str(d) + " kernels: from plugin '" + slots[index_of(d)]->plugin +
                    "' and from plugin '" + plugin + "'");
    for (auto& other : slots)
        if (other && (other->args_type != args_type || other->args_size != args_size))
            throw Error("op '" + op + "': plugin '" + plugin + "' registers a " + kind_str(d) + " kernel taking " +
                        args_desc(args_type, args_size) + ", plugin '" + other->plugin + "' a " +
                        device_kind_name(other->device) + " kernel taking " +
                        args_desc(other->args_type, other->args_size));
    auto e = std::make_unique<OpEntry>();
    e->name = op;
    e->device = d;
    e->plugin = plugin;
    e->args_type = args_type;
    e->args_size = args_size;
    e->kernel = kernel;
    e->supports = std::move(supports);
    slots[index_of(d)] = std::move(e);
    add_entry({plugin, "op", op, kind_str(d)});
}

void Registry::add_op_check(const std::string& op, OpCheck check) {
    const std::string& plugin = current_plugin();
    if (op.empty()) throw Error("plugin '" + plugin + "' registers a check of an op with an empty name");
    if (!check) throw Error("op '" + op + "' (plugin '" + plugin + "'): empty check");
    auto& slot = ops_->checks[op];
    if (slot)
        throw Error("op '" + op + "' has two checks: from plugin '" + slot->plugin + "' and from plugin '" + plugin +
                    "'");
    slot = std::make_unique<OpCheckEntry>(OpCheckEntry{op, plugin, std::move(check)});
}

void Registry::resolve_op(const char* name, const char* args_type, size_t args_size, const OpEntry** out) const {
    auto it = ops_->kernels.find(name);
    bool any = false;
    if (it != ops_->kernels.end())
        for (int k = 0; k < kDeviceKindCount; ++k) {
            const OpEntry* e = it->second[k].get();
            out[k] = e;
            if (!e) continue;
            any = true;
            if (e->args_type != args_type || e->args_size != args_size)
                throw Error("op '" + std::string(name) + "' is called with " + args_desc(args_type, args_size) +
                            ", but its " + device_kind_name(e->device) + " kernel (plugin '" + e->plugin + "') takes " +
                            args_desc(e->args_type, e->args_size));
        }
    if (!any) throw Error("no loaded plugin provides op '" + std::string(name) + "' (for any device)");
}

const OpEntry* Registry::find_op(const std::string& name, DeviceKind d) const {
    auto it = ops_->kernels.find(name);
    if (it == ops_->kernels.end() || !valid_kind(d)) return nullptr;
    return it->second[index_of(d)].get();
}

std::vector<const OpEntry*> Registry::ops() const {
    std::vector<const OpEntry*> r;
    for (auto& [_, slots] : ops_->kernels)
        for (auto& e : slots)
            if (e) r.push_back(e.get());
    return r;
}

const OpCheckEntry* Registry::find_op_check(const std::string& op) const {
    auto it = ops_->checks.find(op);
    return it == ops_->checks.end() ? nullptr : it->second.get();
}

std::vector<const OpCheckEntry*> Registry::op_checks() const {
    std::vector<const OpCheckEntry*> r;
    for (auto& [_, c] : ops_->checks) r.push_back(c.get());
    return r;
}

std::string Registry::check_ops(const std::vector<std::string>& names, const Executor& ex) const {
    std::string out;
    std::set<std::string> seen;
    const DeviceKind d = ex.kind();
    for (const auto& name : names) {
        if (!seen.insert(name).second) continue;
        std::string why;
        auto it = ops_->kernels.find(name);
        const OpEntry* e = find_op(name, d);
        if (it == ops_->kernels.end()) {
            why = "op '" + name + "' is not available on " + kind_str(d) + " (no loaded plugin provides it)";
        } else if (!e) {
            const OpEntry* entries[kDeviceKindCount];
            for (int k = 0; k < kDeviceKindCount; ++k) entries[k] = it->second[k].get();
            why = "op '" + name + "' is not available on " + kind_str(d) + " (provided for: " + provided_for(entries) +
                  ")";
        } else if (!e->supported(ex)) {
            why = "op '" + name + "' is not supported on " + ex.name() + " (its " + kind_str(d) +
                  " kernel from plugin '" + e->plugin + "' refuses this device)";
        }
        if (!why.empty()) out += (out.empty() ? "" : "; ") + why;
    }
    return out;
}

}  // namespace imp
