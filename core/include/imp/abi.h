// imp SDK: the plugin ABI. A plugin is a shared library (libimp_<name>.so) that exports two plain C symbols: a
// PluginDescriptor object named "imp_plugin_descriptor" and a register function named "imp_plugin_register".
// The host calls the register function only after the descriptor passes its checks:
//   abi_major equal, host abi_minor >= plugin abi_minor, build_key equal (C++ classes cross the boundary, so
//   compiler, C++ library ABI, CUDA version, CUDA architectures and SDK version must match).
// Use the IMP_PLUGIN macro below; never fill the descriptor by hand. It needs no header beyond the SDK's.
#pragma once
#include <cstdint>

#include "imp/config.h"

namespace imp {

class Registry;

constexpr uint32_t kAbiMajor = IMP_ABI_MAJOR;
constexpr uint32_t kAbiMinor = IMP_ABI_MINOR;

enum class PluginKind : uint32_t { Arch = 1, Quant = 2, Other = 3 };

// Plain struct: its layout is fixed for a given ABI major. New fields go at the end (minor bump);
// struct_size tells the host which fields a plugin has.
struct PluginDescriptor {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t kind;          // PluginKind
    const char* name;       // "arch_llama"; the file must be libimp_<name>.so
    const char* version;    // plugin version, "1.0.0"
    const char* build_key;  // IMP_BUILD_KEY of the SDK the plugin was built against
    const char* provides;   // what it registers, readable without registering: "arch:llama,qwen3;layer:llama.attention"
};

using RegisterFn = void(Registry&);

}  // namespace imp

#define IMP_STR2_(x) #x
#define IMP_STR_(x) IMP_STR2_(x)
// CUDA architectures the plugin's device code targets: imp_add_plugin() defines IMP_PLUGIN_CUDA_ARCHS from the
// target's CUDA architectures; without it, the SDK's (a plugin built otherwise compiles for the SDK's list).
#ifndef IMP_PLUGIN_CUDA_ARCHS
#define IMP_PLUGIN_CUDA_ARCHS IMP_CUDA_ARCHS
#endif
// Compiler + C++ library ABI + CUDA version + CUDA architectures + SDK version. Plugins and host must agree exactly.
#define IMP_BUILD_KEY                                                                                           \
    "gcc-" IMP_STR_(__GNUC__) "." IMP_STR_(__GNUC_MINOR__) "/cxx11abi-" IMP_STR_(_GLIBCXX_USE_CXX11_ABI)        \
    "/cuda-" IMP_CUDA_VERSION "/sm-" IMP_PLUGIN_CUDA_ARCHS "/sdk-" IMP_SDK_VERSION

#define IMP_PLUGIN_EXPORT_ extern "C" __attribute__((visibility("default")))

// Declares a plugin. `regfn` is a function `void regfn(imp::Registry&)` in the plugin.
// `provides_` lists what regfn registers ("arch:llama,qwen3;format:Q4_0,Q8_0;layer:llama.ffn;op:hello.scale_add"),
// so the host can say which plugin would serve an architecture without loading it.
#define IMP_PLUGIN(kind_, name_, version_, provides_, regfn)                                                   \
    IMP_PLUGIN_EXPORT_ const ::imp::PluginDescriptor imp_plugin_descriptor = {                                \
        sizeof(::imp::PluginDescriptor), IMP_ABI_MAJOR, IMP_ABI_MINOR, static_cast<uint32_t>(kind_), name_,      \
        version_, IMP_BUILD_KEY, provides_};                                                                      \
    IMP_PLUGIN_EXPORT_ void imp_plugin_register(::imp::Registry& r) { regfn(r); }
