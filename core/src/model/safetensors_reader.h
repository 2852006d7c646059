// Safetensors reader: one .safetensors file, or a Hugging Face model folder (model.safetensors or
// model.safetensors.index.json + shards, and config.json flattened into the metadata with dotted keys, plus
// hf_quant_config.json under "hf_quant_config." when the folder has one).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "imp/export.h"
#include "imp/model.h"
#include "model/mapped_file.h"

namespace imp {

class IMP_API SafetensorsSource final : public ModelSource {
public:
    // A single file: metadata holds only "__safetensors.<key>" entries from its __metadata__; no architecture.
    static std::unique_ptr<SafetensorsSource> open_file(std::shared_ptr<MappedFile> file);
    // A folder: config.json is required; architecture() is its "model_type".
    static std::unique_ptr<SafetensorsSource> open_folder(const std::string& dir);

    ContainerKind kind() const override { return ContainerKind::Safetensors; }
    std::string architecture() const override { return arch_; }
    const Metadata& metadata() const override { return meta_; }
    const std::vector<TensorInfo>& tensors() const override { return tensors_; }
    std::string path() const override { return path_; }
    uint64_t file_bytes() const override { return bytes_; }  // sum over the safetensors files

    const std::vector<std::shared_ptr<MappedFile>>& files() const { return files_; }

private:
    SafetensorsSource() = default;
    void add_file(std::shared_ptr<MappedFile> file);

    std::string path_;
    std::string arch_;
    Metadata meta_;
    std::vector<TensorInfo> tensors_;
    std::vector<std::shared_ptr<MappedFile>> files_;
    uint64_t bytes_ = 0;
};

// Safetensors dtype name -> bits per element (4, 6, 8, 16, 32 or 64); 0 if unknown.
IMP_API unsigned safetensors_dtype_bits(const std::string& dtype);

}  // namespace imp
