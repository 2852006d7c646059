// GGUF v2/v3 reader (little-endian). Every count, length and offset is checked against the file before use.
// A split GGUF (llama.cpp's gguf-split: split.count parts named <prefix>-00001-of-0000N.gguf ...) is opened from its
// first part; the other parts are found beside it by name and their tensors joined to the first's.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "imp/export.h"
#include "imp/model.h"
#include "model/mapped_file.h"

namespace imp {

class IMP_API GgufSource final : public ModelSource {
public:
    // Parses and validates the whole header (and every part's, for a split GGUF); throws imp::Error("<path>:
    // <problem>"). `part` > 0: the file is that part of a split GGUF, read on its own (by the first part's reader).
    explicit GgufSource(std::shared_ptr<MappedFile> file, int part = 0);

    ContainerKind kind() const override { return ContainerKind::GGUF; }
    std::string architecture() const override { return arch_; }
    const Metadata& metadata() const override { return meta_; }
    const std::vector<TensorInfo>& tensors() const override { return tensors_; }
    std::string path() const override { return file_->path(); }
    uint64_t file_bytes() const override;  // every part's, for a split GGUF

    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the tensor data section

    int parts() const { return 1 + int(parts_.size()); }

private:
    void join_parts(int64_t count);  // opens parts 2..count beside this (the first) and takes their tensors

    std::shared_ptr<MappedFile> file_;
    std::vector<std::unique_ptr<GgufSource>> parts_;  // a split GGUF's other parts (their files stay mapped)
    Metadata meta_;
    std::vector<TensorInfo> tensors_;
    std::string arch_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
};

IMP_API std::unique_ptr<ModelSource> open_gguf(const std::string& path);

}  // namespace imp
