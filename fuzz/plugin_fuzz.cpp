// Fuzz target: the checks a plugin file passes before dlopen (plugin/elf_check.h) on arbitrary bytes, and the
// descriptor's text fields the loader parses (provides lists, the plugin name from a file name).
#include <cstdint>
#include <string>

#include "imp/error.h"
#include "plugin/elf_check.h"
#include "plugin/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        imp::check_elf_image("fuzz.so", data, size);
    } catch (const imp::Error&) {
    }
    const std::string text(reinterpret_cast<const char*>(data), size);
    for (const auto& p : imp::parse_provides(text))
        if (p.find(':') == std::string::npos) __builtin_trap();
    const std::string name = imp::plugin_name_from_file(text);
    if (!name.empty() && text.find("libimp_" + name + ".so") == std::string::npos) __builtin_trap();
    return 0;
}
