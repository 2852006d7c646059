// [plugin.<name>] tables: parsing (file and --set), and checking against the declarations in a Registry.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "imp/error.h"
#include "imp/registry.h"
#include "profile/profile.h"
#include "util/core_settings.h"

namespace fs = std::filesystem;

namespace {

std::string write_profile(const std::string& text) {
    fs::path d = fs::path(IMP_BINARY_DIR) / "test-plugin-settings" / std::to_string(getpid());
    fs::create_directories(d);
    fs::path p = d / "p.toml";
    std::ofstream(p) << text;
    return p.string();
}

template <class F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "";
}

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// A registry with one plugin "qg" declaring three settings, as a plugin's register function would.
void declare_qg(imp::Registry& reg) {
    reg.set_current_plugin("qg");
    reg.add_setting({"gemv", std::string("auto"), "GEMV kernel", {"auto", "dp4a", "mma"}});
    reg.add_setting({"splits", int64_t(0), "column splits", {}, 0, 8});
    reg.add_setting({"ratio", 0.5, "a float", {}, 0.0, 1.0});
    reg.add_setting({"rows", int64_t(64), "an integer with a large bound", {}, 0, 1048576});
    reg.set_current_plugin("core");
}

}  // namespace

TEST_CASE("plugin settings: tables parse in order and apply to the declarations", "[profile][settings]") {
    const auto path = write_profile(
        "[plugin.qg]\ngemv = \"dp4a\"\nsplits = 4\n\n[plugin.core]\npdl = false\ndecode_attention = \"split\"\n");
    // router_cluster and router_warps are string settings with numeric choices: quotes are optional on --set.
    imp::Profile p = imp::load_profile(path, {"plugin.qg.splits=2", "plugin.qg.ratio=1", "plugin.core.router_cluster=\"16\"",
                                               "plugin.core.router_grid=\"cluster\"", "plugin.core.router_warps=16"});
    REQUIRE(p.plugin_settings.size() == 9);
    // The file's values (TOML keys have no order), then the --set ones in order.
    bool found = false;
    for (size_t i = 0; i < 4; ++i)
        if (p.plugin_settings[i].plugin == "qg" && p.plugin_settings[i].key == "gemv") {
            CHECK(p.plugin_settings[i].where == path + ":2");
            found = true;
        }
    CHECK(found);
    CHECK(p.plugin_settings[4].where == "--set plugin.qg.splits=2");
    CHECK(p.plugin_settings[5].key == "ratio");

    imp::Registry reg;
    declare_qg(reg);
    CHECK(reg.settings("qg").get_string("gemv") == "auto");  // defaults before the profile applies
    CHECK_FALSE(reg.settings("qg").is_set("gemv"));
    imp::apply_plugin_settings(p, reg);
    const imp::Settings& s = reg.settings("qg");
    CHECK(s.get_string("gemv") == "dp4a");
    CHECK(s.get_int("splits") == 2);  // the later --set wins
    CHECK(s.get_float("ratio") == 1.0);  // an integer is taken for a float setting
    CHECK(s.is_set("gemv"));
    const imp::CoreSettings c = imp::core_settings(reg);
    CHECK_FALSE(c.pdl);
    CHECK(c.decode_attention == "split");
    CHECK(c.router_cluster == 16);
    CHECK(c.attention_mma);  // untouched keys keep their defaults
    CHECK(c.fuse_weights);
    CHECK(c.router_warps == 16);
    CHECK_FALSE(c.router_wide);
    CHECK(imp::core_settings(imp::Registry{}).router_wide);  // the default: the wide router
}

TEST_CASE("plugin settings: every bad value is one error naming the line, plugin and key", "[profile][settings]") {
    imp::Registry reg;
    declare_qg(reg);
    const auto apply_error = [&](const std::string& text) {
        return error_of([&] {
            imp::Profile p = imp::load_profile(write_profile(text));
            imp::apply_plugin_settings(p, reg);
        });
    };
    std::string e = apply_error("[plugin.qg]\ngemv = \"fast\"\n");
    INFO(e);
    CHECK(has(e, "p.toml:2: [plugin.qg] key 'gemv' must be one of auto, dp4a, mma, got \"fast\""));
    e = apply_error("[plugin.qg]\n\nsplits = true\n");
    CHECK(has(e, "p.toml:3: [plugin.qg] key 'splits' must be an integer, got boolean"));
    e = apply_error("[plugin.qg]\nsplits = 9\n");
    CHECK(has(e, "p.toml:2: [plugin.qg] key 'splits' must be in [0, 8], got 9"));
    e = apply_error("[plugin.qg]\nrows = 99999999999999999\n");
    CHECK(has(e, "p.toml:2: [plugin.qg] key 'rows' must be in [0, 1048576], got 99999999999999999"));
    e = apply_error("[plugin.qg]\nratio = 1.0000001\n");
    CHECK(has(e, "p.toml:2: [plugin.qg] key 'ratio' must be in [0, 1], got 1.0000001"));
    e = apply_error("[plugin.qg]\nratio = nan\n");
    CHECK(has(e, "p.toml:2: [plugin.qg] key 'ratio' must be a finite number"));
    e = apply_error("[plugin.qg]\nsplitz = 1\n");
    CHECK(has(e, "p.toml:2: [plugin.qg] unknown key 'splitz' (keys: gemv, splits, ratio, rows)"));
    e = apply_error("[plugin.nope]\nx = 1\n");
    CHECK(has(e, "p.toml:2: [plugin.nope]: no loaded plugin is named 'nope' (loaded: core, qg)"));
    e = apply_error("[plugin]\nqg = 1\n");
    CHECK(has(e, "p.toml:2: [plugin] holds one table per plugin ([plugin.qg]); 'qg' is not a table (got integer)"));
    e = apply_error("[plugin.qg]\ngemv = [1, 2]\n");
    CHECK(has(e, "p.toml:2: key 'plugin.qg.gemv' must be a boolean, integer, float or string, got array"));
    e = error_of([] { imp::load_profile(write_profile(""), {"plugin.qg=1"}); });
    CHECK(has(e, "--set plugin.qg=1: expected plugin.<name>.<key>=value"));
    e = error_of([] { imp::load_profile(write_profile(""), {"plugin=1"}); });
    CHECK(has(e, "--set plugin=1: expected plugin.<name>.<key>=value"));
    // A bare word given with --set is a string.
    imp::Profile p = imp::load_profile(write_profile(""), {"plugin.qg.gemv=mma"});
    imp::apply_plugin_settings(p, reg);
    CHECK(reg.settings("qg").get_string("gemv") == "mma");
}

TEST_CASE("plugin settings: declarations are checked and reads are typed", "[settings]") {
    imp::Settings s("p");
    s.declare({"on", true, "", {}});
    CHECK_THROWS_WITH(s.declare({"on", false, "", {}}), "[plugin.p] declares setting 'on' twice");
    CHECK_THROWS_WITH(s.declare({"k", std::string("x"), "", {"a", "b"}}),
                      "[plugin.p] setting 'k': default \"x\" is not one of its choices");
    CHECK(s.get_bool("on"));
    CHECK_THROWS_WITH(s.get_int("on"), "[plugin.p] setting 'on' is a boolean, read as an integer");
    CHECK_THROWS_WITH(s.get_bool("off"), "[plugin.p] unknown key 'off' (keys: on)");
    CHECK(imp::setting_text(imp::SettingValue(std::string("a"))) == "\"a\"");
    CHECK(imp::setting_text(imp::SettingValue(int64_t(3))) == "3");
    CHECK(imp::setting_text(imp::SettingValue(false)) == "false");
    CHECK(imp::setting_text(imp::SettingValue(0.1)) == "0.1");  // the shortest text that reads back the same
    CHECK(imp::setting_text(imp::SettingValue(1048576.0)) == "1048576");
    CHECK(imp::setting_text(imp::SettingValue(1.0000001)) == "1.0000001");
}
