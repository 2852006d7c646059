// The host-memory budget of reading and building a model. A model file's counts and sizes decide how much host
// memory imp takes before any weight moves (a 1-byte metadata array element becomes a ~70-byte value, each tensor
// info a few hundred bytes), so the readers sum what a file asks for before allocating any of it and refuse, in
// one line naming the file and the size, a file that asks for more than the budget: imp's cap for that part or the
// memory this machine has free, whichever is less. Also the size text every memory message uses.
#pragma once
#include <cstdint>
#include <string>

#include "imp/export.h"

namespace imp {

// imp's cap on the host memory a model file's metadata and tensor table may take: 1 GiB, ~10x what the largest
// real vocabularies (262k tokens with scores, types and merges) and MoE tensor tables (~50k tensors) take.
constexpr uint64_t kHostMetadataCap = uint64_t(1) << 30;

// Memory this machine has free for a new allocation (MemAvailable of /proc/meminfo); UINT64_MAX when unknown.
IMP_API uint64_t host_memory_free();

// Host memory this process holds (VmRSS of /proc/self/status); 0 when unknown.
IMP_API uint64_t host_memory_held();

// Throws imp::Error "<file>: <what> needs <size> of host memory, more than imp's limit of <cap>" (or "... more
// than the <free> free on this machine") when bytes exceeds min(cap, free); without `free`, host_memory_free().
IMP_API void check_host_budget(const std::string& file, const std::string& what, uint64_t bytes, uint64_t cap,
                               uint64_t free);
IMP_API void check_host_budget(const std::string& file, const std::string& what, uint64_t bytes, uint64_t cap);

// "1.50 GiB" / "12.0 MiB" / "512 bytes".
IMP_API std::string human_bytes(uint64_t b);

}  // namespace imp
