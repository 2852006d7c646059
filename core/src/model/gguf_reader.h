// GGUF v2/v3 reader (little-endian). Every count, length and offset is checked against the file before use.
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
    // Parses and validates the whole header; throws imp::Error("<path>: <problem>").
    explicit GgufSource(std::shared_ptr<MappedFile> file);

    ContainerKind kind() const override { return ContainerKind::GGUF; }
    std::string architecture() const override { return arch_; }
    const Metadata& metadata() const override { return meta_; }
    const std::vector<TensorInfo>& tensors() const override { return tensors_; }
    std::string path() const override { return file_->path(); }
    uint64_t file_bytes() const override { return file_->size(); }

    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the tensor data section

private:
    std::shared_ptr<MappedFile> file_;
    Metadata meta_;
    std::vector<TensorInfo> tensors_;
    std::string arch_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
};

IMP_API std::unique_ptr<ModelSource> open_gguf(const std::string& path);

}  // namespace imp
