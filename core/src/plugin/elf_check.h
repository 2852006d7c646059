// Checks a plugin file before dlopen: dlopen maps a truncated or foreign file and may crash inside the dynamic
// loader (SIGBUS on a segment past the end of the file) instead of returning an error. These checks read only the
// bytes the file holds and refuse what the loader could not map safely.
#pragma once
#include <cstdint>
#include <string>

#include "imp/export.h"

namespace imp {

// Throws imp::Error("<name>: not a loadable plugin: <reason>") unless `data[0, size)` is a little-endian 64-bit ELF
// shared object (ET_DYN) for this host's machine whose program headers, loadable segments and section headers all
// lie inside the `size` bytes.
IMP_API void check_elf_image(const std::string& name, const uint8_t* data, uint64_t size);

// The same for a file: a regular file (a FIFO or device is refused without blocking), then its bytes.
IMP_API void check_plugin_file(const std::string& path);

}  // namespace imp
