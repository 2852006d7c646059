// One source for all the loader's test plugins; tests/plugins/CMakeLists.txt compiles it with TP_* definitions:
//   TP_FILE        file name part (libimp_<TP_FILE>.so); the registered layer kind is "test.<TP_FILE>"
//   TP_NAME        descriptor name (default TP_FILE)          TP_VERSION   plugin version (default "1.0.0")
//   TP_ABI_MAJOR   TP_ABI_MINOR   TP_BUILD_KEY   TP_SIZE (descriptor struct_size)   TP_PROVIDES, TP_GOOD_PROVIDES
//   TP_NO_DESCRIPTOR  export no descriptor at all (not a plugin)
//   TP_UNRESOLVED     reference a symbol that exists nowhere (dlopen with RTLD_NOW fails)
//   TP_THROW          the register function throws
#include <memory>
#include <stdexcept>
#include <string>

#include "imp/abi.h"
#include "imp/registry.h"

#ifndef TP_NAME
#define TP_NAME TP_FILE
#endif
#ifndef TP_VERSION
#define TP_VERSION "1.0.0"
#endif
#ifndef TP_ABI_MAJOR
#define TP_ABI_MAJOR IMP_ABI_MAJOR
#endif
#ifndef TP_ABI_MINOR
#define TP_ABI_MINOR IMP_ABI_MINOR
#endif
#ifndef TP_BUILD_KEY
#define TP_BUILD_KEY IMP_BUILD_KEY
#endif
#ifndef TP_SIZE
#define TP_SIZE sizeof(::imp::PluginDescriptor)
#endif
#ifdef TP_GOOD_PROVIDES  // a ';' does not survive a compile definition through make
#define TP_PROVIDES "layer:test.test_good;arch:test_good_arch, other_arch"
#endif
#ifndef TP_PROVIDES
#define TP_PROVIDES "layer:test." TP_FILE
#endif

namespace {

class TestLayer : public imp::Layer {
public:
    std::string kind() const override { return "test." TP_FILE; }
    std::vector<imp::WeightSpec> weight_specs() const override { return {}; }
    void bind(const imp::WeightSet&) override {}
    int64_t scratch_floats(int64_t) const override { return 0; }
    void forward(imp::LayerContext&, float*) override {}
};

#ifdef TP_UNRESOLVED
extern "C" int imp_test_symbol_that_does_not_exist(int);
#endif

void register_test(imp::Registry& r) {
#ifdef TP_THROW
    throw std::runtime_error("test plugin refuses to register");
#endif
#ifdef TP_UNRESOLVED
    if (imp_test_symbol_that_does_not_exist(1) == 42) return;
#endif
    r.add_layer_kind("test." TP_FILE, [](const imp::LayerParams&) { return std::make_unique<TestLayer>(); });
}

}  // namespace

#ifdef TP_NO_DESCRIPTOR
extern "C" __attribute__((visibility("default"))) void imp_test_not_a_plugin(imp::Registry& r) { register_test(r); }
#else
// What IMP_PLUGIN expands to, with each field overridable.
IMP_PLUGIN_EXPORT_ const ::imp::PluginDescriptor imp_plugin_descriptor = {
    static_cast<uint32_t>(TP_SIZE), TP_ABI_MAJOR, TP_ABI_MINOR, static_cast<uint32_t>(::imp::PluginKind::Other),
    TP_NAME, TP_VERSION, TP_BUILD_KEY, TP_PROVIDES};
IMP_PLUGIN_EXPORT_ void imp_plugin_register(::imp::Registry& r) { register_test(r); }
#endif
