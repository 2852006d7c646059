// Fuzz target: the GGUF reader on arbitrary bytes, then `imp inspect`'s table of what it accepted. Any outcome but an
// imp::Error (a crash, a sanitizer report, a hang, another exception type) is a finding.
#include <cstdint>
#include <string>

#include "imp/error.h"
#include "model/gguf_reader.h"
#include "model/inspect.h"
#include "model/mapped_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto file = imp::MappedFile::from_bytes("fuzz.gguf", std::string(reinterpret_cast<const char*>(data), size));
        imp::GgufSource src(file);
        const std::string table = imp::inspect_model(src);
        for (const auto& t : src.tensors()) {
            // The reader promises [data, data + nbytes) inside the file: touch the first and last byte.
            if (t.nbytes && (t.data < file->data() || t.data + t.nbytes > file->data() + file->size())) __builtin_trap();
        }
        (void)table;
    } catch (const imp::Error&) {
    }
    return 0;
}
