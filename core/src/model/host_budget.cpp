// The host-memory budget of reading and building a model (host_budget.h).
#include "model/host_budget.h"

#include <algorithm>
#include <cstdio>

#include "imp/error.h"

namespace imp {

namespace {

// The "<field> <n> kB" line of a /proc file, in bytes; `otherwise` when absent.
uint64_t proc_kb(const char* file, const char* format, uint64_t otherwise) {
    std::FILE* f = std::fopen(file, "r");
    if (!f) return otherwise;
    char line[256];
    unsigned long kb = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f)) found = std::sscanf(line, format, &kb) == 1;
    std::fclose(f);
    return found ? uint64_t(kb) * 1024 : otherwise;
}

}  // namespace

uint64_t host_memory_free() { return proc_kb("/proc/meminfo", "MemAvailable: %lu kB", UINT64_MAX); }
uint64_t host_memory_held() { return proc_kb("/proc/self/status", "VmRSS: %lu kB", 0); }

void check_host_budget(const std::string& file, const std::string& what, uint64_t bytes, uint64_t cap,
                       uint64_t free) {
    if (bytes <= cap && bytes <= free) return;
    const std::string need = file + ": " + what + " needs " + human_bytes(bytes) + " (" + std::to_string(bytes) +
                             " bytes) of host memory, more than ";
    if (bytes > cap) throw Error(need + "imp's limit of " + human_bytes(cap));
    throw Error(need + "the " + human_bytes(free) + " free on this machine");
}

void check_host_budget(const std::string& file, const std::string& what, uint64_t bytes, uint64_t cap) {
    if (bytes > cap) check_host_budget(file, what, bytes, cap, UINT64_MAX);
    check_host_budget(file, what, bytes, cap, host_memory_free());
}

std::string human_bytes(uint64_t b) {
    char buf[32];
    if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1ull << 30));
    else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1ull << 20));
    else std::snprintf(buf, sizeof buf, "%llu bytes", (unsigned long long)b);
    return buf;
}

}  // namespace imp
