// Loader tests against the test plugins of tests/plugins (built into <build>/test-plugins and test-plugins-alt).
#include "plugin/loader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <filesystem>
#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "imp/error.h"
#include "imp/executor.h"
#include "imp/layer.h"
#include "imp/metadata.h"
#include "imp/ops.h"
#include "plugin/elf_check.h"
#include "util/host_executor_test_util.h"

namespace fs = std::filesystem;
using imp::PluginLoader;
using imp::Registry;

namespace {

const std::string kDir = std::string(IMP_BINARY_DIR) + "/test-plugins";
const std::string kAltDir = std::string(IMP_BINARY_DIR) + "/test-plugins-alt";
// The host's build key with other CUDA architectures (what libimp_test_cuda_archs.so was built with).
const std::string cuda_archs_key = [] {
    std::string k = imp::host_build_key();
    const std::string archs = std::string("/sm-") + IMP_CUDA_ARCHS + "/";
    return k.replace(k.find(archs), archs.size(), "/sm-sm_test/");
}();

// The message of the imp::Error that fn throws ("" when it throws nothing).
template <class F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "";
}

// Sets an environment variable for one scope and restores it after.
struct ScopedEnv {
    std::string name;
    std::string old;
    bool had;
    ScopedEnv(const char* n, const std::string& v) : name(n) {
        const char* o = std::getenv(n);
        had = o != nullptr;
        if (had) old = o;
        setenv(n, v.c_str(), 1);
    }
    ~ScopedEnv() {
        if (had)
            setenv(name.c_str(), old.c_str(), 1);
        else
            unsetenv(name.c_str());
    }
};

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == std::string::npos; }

}  // namespace

TEST_CASE("plugin loader: test plugins were built", "[plugin]") {
    REQUIRE(fs::exists(kDir + "/libimp_test_good.so"));
    REQUIRE(fs::exists(kAltDir + "/libimp_test_arch.so"));
}

TEST_CASE("plugin loader: a good plugin loads, registers, and loads twice as a no-op", "[plugin]") {
    Registry reg;
    PluginLoader loader(reg, {kDir});
    const auto& info = loader.load("test_good");
    CHECK(info.name == "test_good");
    CHECK(info.version == "1.2.3");
    CHECK(info.kind == imp::PluginKind::Other);
    CHECK(info.abi_major == imp::kAbiMajor);
    CHECK(info.abi_minor == imp::kAbiMinor);
    CHECK(info.build_key == imp::host_build_key());
    CHECK(info.provides == "layer:test.test_good;arch:test_good_arch, other_arch");
    CHECK(info.path == fs::weakly_canonical(kDir + "/libimp_test_good.so").string());
    CHECK(reg.has_layer_kind("test.test_good"));
    REQUIRE(reg.entries().size() == 1);
    CHECK(reg.entries()[0].plugin == "test_good");  // set_current_plugin was set before registering

    // Second load by name and by file: no error, no second registration (which would throw "registered twice").
    CHECK_NOTHROW(loader.load("test_good"));
    CHECK_NOTHROW(loader.load_file(kDir + "/libimp_test_good.so"));
    CHECK(reg.entries().size() == 1);
    REQUIRE(loader.loaded().size() == 1);
    CHECK(loader.loaded()[0].name == "test_good");

    // The same name from another file is refused.
    auto err = error_of([&] { loader.load_file(kAltDir + "/libimp_test_good.so"); });
    CHECK(err.find("plugin 'test_good' is already loaded from") != std::string::npos);

    // The layer kind the plugin registered can be built.
    imp::LayerParams p;
    auto layer = reg.make_layer("test.test_good", p);
    REQUIRE(layer);
    CHECK(layer->kind() == "test.test_good");
}

TEST_CASE("plugin loader: each bad plugin is rejected with its own message and is never registered", "[plugin]") {
    const std::string host_abi = std::to_string(imp::kAbiMajor) + "." + std::to_string(imp::kAbiMinor);
    struct Case {
        std::string file;
        std::string expect;
    } cases[] = {
        {"test_abi_major", kDir + "/libimp_test_abi_major.so: ABI " + std::to_string(imp::kAbiMajor + 1) + "." +
                               std::to_string(imp::kAbiMinor) + " required, host provides " + host_abi},
        {"test_abi_minor", kDir + "/libimp_test_abi_minor.so: ABI " + std::to_string(imp::kAbiMajor) + "." +
                               std::to_string(imp::kAbiMinor + 1) + " required, host provides " + host_abi},
        {"test_build_key", kDir + "/libimp_test_build_key.so: built with gcc-0.0/cxx11abi-0/cuda-0.0/sm-0/sdk-0.0.0, "
                                  "host is " + imp::host_build_key()},
        {"test_cuda_archs", kDir + "/libimp_test_cuda_archs.so: built with " + cuda_archs_key + ", host is " +
                                imp::host_build_key()},
        {"test_not_plugin",
         kDir + "/libimp_test_not_plugin.so: not an imp plugin (no imp_plugin_descriptor export)"},
        {"test_small_struct", kDir + "/libimp_test_small_struct.so: plugin descriptor is 24 bytes, ABI " + host_abi +
                                  " needs at least " + std::to_string(sizeof(imp::PluginDescriptor))},
        {"test_wrong_name",
         kDir + "/libimp_test_wrong_name.so: descriptor names plugin 'test_other', so the file must be named "
         "libimp_test_other.so"},
        {"test_unresolved", kDir + "/libimp_test_unresolved.so: cannot be loaded: "},
        {"test_throws",
         kDir + "/libimp_test_throws.so: register function failed: test plugin refuses to register"},
    };
    for (auto& c : cases) {
        SECTION(c.file) {
            Registry reg;
            PluginLoader loader(reg, {kDir});
            auto err = error_of([&] { loader.load(c.file); });
            INFO(err);
            CHECK(one_line(err));
            CHECK(err.rfind(c.expect, 0) == 0);
            if (c.file != "test_unresolved") CHECK(err == c.expect);
            CHECK_FALSE(reg.has_layer_kind("test." + c.file));
            CHECK(reg.entries().empty());
            CHECK(loader.loaded().empty());
            // Asking again gives the same answer (a rejected plugin is not half-loaded).
            CHECK(error_of([&] { loader.load(c.file); }) == err);
        }
    }
}

TEST_CASE("plugin loader: an unresolved symbol is named in the load error", "[plugin]") {
    Registry reg;
    PluginLoader loader(reg, {kDir});
    auto err = error_of([&] { loader.load("test_unresolved"); });
    CHECK(err.find("imp_test_symbol_that_does_not_exist") != std::string::npos);
}

TEST_CASE("plugin loader: a missing plugin names the directories searched and the plugins available", "[plugin]") {
    Registry reg;
    PluginLoader loader(reg, {kDir, kAltDir, "/nonexistent/imp-plugins"});
    auto err = error_of([&] { loader.load("quant_nvfp4"); });
    INFO(err);
    CHECK(one_line(err));
    CHECK(err ==
          "plugin 'quant_nvfp4' not found; searched: " + kDir + ", " + kAltDir +
              ", /nonexistent/imp-plugins; available: test_abi_major, test_abi_minor, test_arch, test_build_key, "
              "test_cuda_archs, test_good, test_not_plugin, test_small_struct, test_throws, test_unresolved, "
              "test_wrong_name");

    PluginLoader empty(reg, {"/nonexistent/imp-plugins"});
    CHECK(error_of([&] { empty.load("x"); }) ==
          "plugin 'x' not found; searched: /nonexistent/imp-plugins; available: none");
    CHECK(error_of([&] { empty.load("../evil"); }).find("is invalid") != std::string::npos);
    CHECK(error_of([&] { empty.load_file(kDir + "/libimp_nope.so"); }).find("no such plugin file") !=
          std::string::npos);
    CHECK(error_of([&] { empty.load_file("/etc/hostname"); }).find("not a plugin file name") != std::string::npos);

    // find(): the file load() would load, or the same error, before anything is opened (a caller adds where the
    // name came from).
    CHECK(error_of([&] { empty.find("x"); }) ==
          "plugin 'x' not found; searched: /nonexistent/imp-plugins; available: none");
    CHECK(loader.find("test_good") == kDir + "/libimp_test_good.so");
    CHECK_FALSE(loader.is_loaded("test_good"));
}

TEST_CASE("plugin loader: a file cut short after the ELF magic is called truncated, not foreign", "[plugin]") {
    const auto check = [](const std::string& bytes) {
        return error_of([&] { imp::check_elf_image("/p/libimp_x.so", reinterpret_cast<const uint8_t*>(bytes.data()),
                                                   bytes.size()); });
    };
    CHECK(check("\x7f" "ELF") ==
          "/p/libimp_x.so: not a loadable plugin: truncated: 4 bytes, smaller than an ELF header (64)");
    CHECK(check(std::string("\x7f" "ELF\x02\x01", 6)) ==
          "/p/libimp_x.so: not a loadable plugin: truncated: 6 bytes, smaller than an ELF header (64)");
    CHECK(check("\x7f" "EL") == "/p/libimp_x.so: not a loadable plugin: not an ELF file (3 bytes, no ELF magic)");
    CHECK(check("hello") == "/p/libimp_x.so: not a loadable plugin: not an ELF file (5 bytes, no ELF magic)");
}

TEST_CASE("plugin loader: the first directory that has a plugin wins", "[plugin]") {
    Registry reg;
    PluginLoader alt_first(reg, {kAltDir, kDir});
    CHECK(alt_first.load("test_good").version == "2.0.0");
    Registry reg2;
    PluginLoader dir_first(reg2, {kDir, kAltDir});
    CHECK(dir_first.load("test_good").version == "1.2.3");
    CHECK(dir_first.load("test_arch").path == fs::weakly_canonical(kAltDir + "/libimp_test_arch.so").string());
}

TEST_CASE("plugin loader: search order is profile paths, IMP_PLUGIN_PATH, <exe>/../lib/imp/plugins", "[plugin]") {
    ScopedEnv env("IMP_PLUGIN_PATH", kAltDir + "::" + kDir + "/:" + kAltDir);
    auto dirs = imp::plugin_search_dirs({"/profile/a", "/profile/b"});
    REQUIRE(dirs.size() == 5);
    CHECK(dirs[0] == "/profile/a");
    CHECK(dirs[1] == "/profile/b");
    CHECK(dirs[2] == kAltDir);
    CHECK(dirs[3] == kDir);  // trailing slash dropped, duplicate of kAltDir dropped, empty entry dropped
    CHECK(dirs[4] == fs::path(std::string(IMP_BINARY_DIR) + "/lib/imp/plugins").lexically_normal().string());

    // IMP_PLUGIN_PATH is honoured by a loader built from those directories.
    Registry reg;
    PluginLoader loader(reg, imp::plugin_search_dirs({}));
    CHECK(loader.load("test_arch").name == "test_arch");
    CHECK(loader.load("test_good").version == "2.0.0");  // alt dir comes first in IMP_PLUGIN_PATH
}

TEST_CASE("plugin loader: without IMP_PLUGIN_PATH the profile paths and the install dir are searched", "[plugin]") {
    ScopedEnv env("IMP_PLUGIN_PATH", "");
    auto dirs = imp::plugin_search_dirs({kDir});
    REQUIRE(dirs.size() == 2);
    CHECK(dirs[0] == kDir);
}

TEST_CASE("plugin loader: scan reads descriptors without registering and explains the bad ones", "[plugin]") {
    Registry reg;
    PluginLoader loader(reg, {kDir, kAltDir});
    auto found = loader.scan();
    CHECK(reg.entries().empty());
    CHECK(loader.loaded().empty());
    REQUIRE(found.size() == 11);  // test_good in the alt dir is hidden by the first dir's
    std::map<std::string, PluginLoader::Found> by_name;
    for (auto& f : found) by_name[imp::plugin_name_from_file(f.path)] = f;
    REQUIRE(by_name.count("test_good"));
    REQUIRE(by_name["test_good"].info);
    CHECK(by_name["test_good"].info->version == "1.2.3");
    CHECK(by_name["test_good"].error.empty());
    REQUIRE(by_name["test_arch"].info);
    CHECK(by_name["test_arch"].info->provides == "arch:alt_arch");
    // test_throws has a valid descriptor: only registering would fail.
    CHECK(by_name["test_throws"].info);
    for (auto bad : {"test_abi_major", "test_abi_minor", "test_build_key", "test_cuda_archs", "test_not_plugin",
                     "test_small_struct", "test_wrong_name", "test_unresolved"}) {
        INFO(bad);
        CHECK_FALSE(by_name[bad].info);
        CHECK(by_name[bad].error.rfind(kDir + "/libimp_" + bad + ".so: ", 0) == 0);
    }
}

TEST_CASE("plugin loader: plugin_for_architecture reads provides, no_arch_message suggests the plugin", "[plugin]") {
    CHECK(imp::parse_provides("arch:llama, qwen3 ;format:Q4_0,Q8_0;layer:llama.ffn;junk;x:") ==
          std::vector<std::string>{"arch:llama", "arch:qwen3", "format:Q4_0", "format:Q8_0", "layer:llama.ffn"});

    Registry reg;
    PluginLoader loader(reg, {kDir, kAltDir});
    CHECK(loader.plugin_for_architecture("test_good_arch") == "test_good");
    CHECK(loader.plugin_for_architecture("other_arch") == "test_good");
    CHECK(loader.plugin_for_architecture("alt_arch") == "test_arch");
    CHECK(loader.plugin_for_architecture("minor_arch") == "");  // its descriptor is rejected
    CHECK(loader.plugin_for_architecture("qwen3moe") == "");
    CHECK(loader.loaded().empty());
    CHECK(reg.entries().empty());

    loader.load("test_good");
    CHECK(imp::no_arch_message("alt_arch", loader) ==
          "no loaded plugin handles architecture 'alt_arch' (loaded: test_good); add test_arch to [plugins]");
    CHECK(imp::no_arch_message("qwen3moe", loader) ==
          "no loaded plugin handles architecture 'qwen3moe' (loaded: test_good); no plugin found provides it");
    Registry reg2;
    PluginLoader none(reg2, {"/nonexistent"});
    CHECK(imp::no_arch_message("llama", none) ==
          "no loaded plugin handles architecture 'llama' (loaded: none); no plugin found provides it");
}

TEST_CASE("plugin loader: the build key carries the SDK's CUDA architectures and ABI 4", "[plugin]") {
    CHECK(imp::kAbiMajor == 4);
    CHECK(!std::string(IMP_CUDA_ARCHS).empty());
    CHECK(imp::host_build_key().find(std::string("/sm-") + IMP_CUDA_ARCHS + "/sdk-") != std::string::npos);
}

TEST_CASE("plugin loader: a plugin built by imp_add_plugin for other CUDA architectures is refused", "[plugin]") {
    Registry reg;
    PluginLoader loader(reg, {std::string(IMP_BINARY_DIR) + "/test-plugins-archs"});
    std::string key = imp::host_build_key();
    const std::string archs = std::string("/sm-") + IMP_CUDA_ARCHS + "/";
    key.replace(key.find(archs), archs.size(), "/sm-80/");
    CHECK(error_of([&] { loader.load("test_archs80"); }) ==
          std::string(IMP_BINARY_DIR) + "/test-plugins-archs/libimp_test_archs80.so: built with " + key +
              ", host is " + imp::host_build_key());
    CHECK(reg.entries().empty());
}

TEST_CASE("plugin loader: plugin file names", "[plugin]") {
    CHECK(imp::plugin_name_from_file("/a/b/libimp_arch_llama.so") == "arch_llama");
    CHECK(imp::plugin_name_from_file("libimp_.so") == "");
    CHECK(imp::plugin_name_from_file("libfoo.so") == "");
    CHECK(imp::plugin_name_from_file("libimp_x.so.1") == "");
}

// Loads the example plugin (examples/third_party_plugin): by default the one built in the tree (tests/plugins), or
// the one scripts/check-sdk built out of tree against the installed SDK (IMP_EXAMPLE_PLUGIN_DIR). Runs its layer
// through its op on the CPU, and checks what a device without the op's kernel support is told.
TEST_CASE("plugin loader: the example plugin registers its op and its layer runs through it", "[example]") {
    const char* env = std::getenv("IMP_EXAMPLE_PLUGIN_DIR");
    const std::string dir = env ? env : std::string(IMP_BINARY_DIR) + "/test-plugins-example";
    Registry reg;
    PluginLoader loader(reg, {dir});
    const auto& info = loader.load("hello_layer");
    CHECK(info.version == "2.0.0");
    CHECK(info.provides == "layer:example.scale;op:hello.scale_add");
    REQUIRE(reg.has_layer_kind("example.scale"));
    const imp::OpEntry* cpu_op = reg.find_op("hello.scale_add", imp::DeviceKind::CPU);
    const imp::OpEntry* cuda_op = reg.find_op("hello.scale_add", imp::DeviceKind::CUDA);
    REQUIRE(cpu_op);
    REQUIRE(cuda_op);
    CHECK(cpu_op->plugin == "hello_layer");
    CHECK(cuda_op->args_size == cpu_op->args_size);
    REQUIRE(reg.find_op_check("hello.scale_add"));

    imp::Metadata hp;
    imp::LayerParams params{&hp, "blk.0.", 0};
    CHECK(error_of([&] { reg.make_layer("example.scale", params); }).find("example.scale.width") !=
          std::string::npos);
    hp.set("example.scale.width", imp::MetaValue{int64_t(3), "i64"});
    hp.set("example.scale.factor", imp::MetaValue{2.5, "f32"});
    hp.set("example.scale.bias", imp::MetaValue{-1.0, "f32"});
    auto layer = reg.make_layer("example.scale", params);
    REQUIRE(layer);
    CHECK(layer->kind() == "example.scale");
    CHECK(layer->weight_specs().empty());

    imp::test::HostExecutor cpu;
    CHECK(reg.check_ops({"hello.scale_add"}, cpu) == "");
    CHECK(layer->required_ops() == std::vector<std::string>{"hello.scale_add"});
    CHECK(reg.check_ops(layer->required_ops(), cpu) == "");
    imp::StepBatch batch;
    batch.n_tokens = 2;
    imp::LayerContext ctx{cpu, batch, {}, {}, nullptr};
    std::vector<float> hidden{1, 2, 3, -4, 0, 0.5f, 99};  // 2 tokens x width 3, and one float past the end
    layer->forward(ctx, hidden.data());
    CHECK(hidden == std::vector<float>{1.5f, 4, 6.5f, -11, -1, 0.25f, 99});

    // A CUDA-kind executor without CUDA handles: the op's CUDA kernel refuses it, before anything runs.
    imp::test::HostExecutor bare(imp::DeviceKind::CUDA, "bare-device");
    CHECK(reg.check_ops({"hello.scale_add"}, bare) ==
          "op 'hello.scale_add' is not supported on bare-device (its cuda kernel from plugin 'hello_layer' refuses "
          "this device)");
}
