// Fuzz target: the profile parser and --set overrides. The input is a profile (TOML) and, after a "\n--8<--\n" line,
// overrides "section.key=value", one per line. Every outcome is a Profile within the documented ranges
// (configs/README.md) or an imp::Error.
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "imp/error.h"
#include "model/display_text.h"
#include "profile/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto parts = imp::fuzz::split(data, size, 2);
    const auto path = imp::fuzz::scratch_dir("profile") / "fuzz.toml";
    imp::fuzz::write_file(path, parts[0]);
    std::vector<std::string> overrides;
    std::istringstream lines(parts[1]);
    for (std::string l; std::getline(lines, l);) overrides.push_back(l);
    try {
        const imp::Profile p = imp::load_profile(path.string(), overrides);
        const auto& r = p.runtime;
        if (r.threads < 0 || r.threads > 4096 || r.max_seqs < 1 || r.max_seq_len < 1 || r.prefill_chunk < 1)
            __builtin_trap();
        if (p.sampling.top_k < 0 || p.sampling.top_k > INT32_MAX || !(p.sampling.top_p > 0) || p.generate.n_predict < 1)
            __builtin_trap();
        if (imp::utf8_valid_prefix(p.generate.prompt) != p.generate.prompt.size()) __builtin_trap();
    } catch (const imp::Error&) {
    }
    return 0;
}
