// A read-only, memory-mapped file. The mapping lives as long as the object; readers keep a shared_ptr so the
// TensorInfo::data pointers they hand out stay valid for the life of their ModelSource.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "imp/export.h"

namespace imp {

class IMP_API MappedFile {
public:
    // Opens and maps `path`; throws imp::Error("<path>: <reason>") on failure. An empty file maps to size 0; a file
    // that says 0 bytes (procfs: /proc/self/status) is read to its end instead.
    static std::shared_ptr<MappedFile> open(const std::string& path);
    // The same interface over bytes held in memory (tests, embedded models); `path` names it in messages.
    static std::shared_ptr<MappedFile> from_bytes(const std::string& path, std::string bytes);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    MappedFile() = default;
    std::string path_;
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
    bool mapped_ = false;
    std::string owned_;  // from_bytes only
};

// The whole of a regular file as a string, through MappedFile::open (a FIFO or device is refused, never waited on);
// throws imp::Error("<path>: <reason>").
IMP_API std::string read_regular_file(const std::string& path);

}  // namespace imp
