#include "plugin/elf_check.h"

#include <elf.h>

#include <cstring>

#include "imp/error.h"
#include "model/mapped_file.h"

namespace imp {

namespace {

#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
constexpr const char* kHostMachineName = "x86-64";
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
constexpr const char* kHostMachineName = "aarch64";
#else
#error "elf_check: unknown host machine"
#endif

// Does [off, off + count * each) lie inside `size` bytes (no overflow)?
bool fits(uint64_t off, uint64_t count, uint64_t each, uint64_t size) {
    unsigned long long bytes = 0, end = 0;
    if (__builtin_mul_overflow(count, each, &bytes) || __builtin_add_overflow(off, bytes, &end)) return false;
    return end <= size;
}

}  // namespace

void check_elf_image(const std::string& name, const uint8_t* data, uint64_t size) {
    auto fail = [&](const std::string& why) { throw Error(name + ": not a loadable plugin: " + why); };
    if (size < SELFMAG || std::memcmp(data, ELFMAG, SELFMAG) != 0)
        fail("not an ELF file (" + std::to_string(size) + " bytes, no ELF magic)");
    if (size < EI_NIDENT)  // the magic, cut short
        fail("truncated: " + std::to_string(size) + " bytes, smaller than an ELF header (" +
             std::to_string(sizeof(Elf64_Ehdr)) + ")");
    if (data[EI_CLASS] != ELFCLASS64)
        fail(std::string("ELF class ") + (data[EI_CLASS] == ELFCLASS32 ? "32-bit" : std::to_string(data[EI_CLASS])) +
             ", this host loads 64-bit shared objects");
    if (data[EI_DATA] != ELFDATA2LSB) fail("not a little-endian ELF file");
    if (size < sizeof(Elf64_Ehdr))
        fail("truncated: " + std::to_string(size) + " bytes, smaller than an ELF header (" +
             std::to_string(sizeof(Elf64_Ehdr)) + ")");
    Elf64_Ehdr eh;
    std::memcpy(&eh, data, sizeof eh);
    if (eh.e_type != ET_DYN) fail("ELF type " + std::to_string(eh.e_type) + " is not a shared object (ET_DYN)");
    if (eh.e_machine != kHostMachine)
        fail("built for ELF machine " + std::to_string(eh.e_machine) + ", this host is " + kHostMachineName);
    if (eh.e_phnum == 0) fail("no program headers");
    if (eh.e_phentsize != sizeof(Elf64_Phdr))
        fail("program header size " + std::to_string(eh.e_phentsize) + ", expected " +
             std::to_string(sizeof(Elf64_Phdr)));
    if (!fits(eh.e_phoff, eh.e_phnum, sizeof(Elf64_Phdr), size))
        fail("truncated: " + std::to_string(eh.e_phnum) + " program headers at offset " + std::to_string(eh.e_phoff) +
             " run past the end of the file (" + std::to_string(size) + " bytes)");
    for (uint16_t i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, data + eh.e_phoff + uint64_t(i) * sizeof(Elf64_Phdr), sizeof ph);
        if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC) continue;
        if (!fits(ph.p_offset, 1, ph.p_filesz, size))
            fail("truncated: segment " + std::to_string(i) + " needs bytes up to " +
                 std::to_string(ph.p_offset + ph.p_filesz) + ", the file has " + std::to_string(size));
    }
    if (eh.e_shoff != 0 && !fits(eh.e_shoff, eh.e_shnum, eh.e_shentsize, size))
        fail("truncated: section headers at offset " + std::to_string(eh.e_shoff) +
             " run past the end of the file (" + std::to_string(size) + " bytes)");
}

void check_plugin_file(const std::string& path) {
    auto f = MappedFile::open(path);
    check_elf_image(path, f->data(), f->size());
}

}  // namespace imp
