// imp SDK: a model file (GGUF) or folder (safetensors) opened read-only, memory-mapped, bounds-checked.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "imp/export.h"
#include "imp/metadata.h"

namespace imp {

// One tensor as stored in the file. `shape` is always outermost-first (PyTorch/numpy order): a GGUF tensor with
// ne = {n_embd, n_vocab} has shape {n_vocab, n_embd}. `type` is the storage type name: "F32", "F16", "BF16",
// "Q4_K", ... for GGUF (ggml names), "F32", "BF16", "U8", "F8_E4M3", ... for safetensors.
struct TensorInfo {
    std::string name;
    std::string type;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;  // inside the mapped file, validated: [data, data + nbytes) is in the file
    uint64_t nbytes = 0;
    uint64_t file_offset = 0;       // absolute offset in its file
    std::string file;               // which file (shards differ)
    uint32_t ggml_type = UINT32_MAX;  // ggml type id for GGUF tensors, UINT32_MAX otherwise
    int64_t numel() const {
        int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

enum class ContainerKind { GGUF, Safetensors };

class IMP_API ModelSource {
public:
    virtual ~ModelSource() = default;
    virtual ContainerKind kind() const = 0;
    // "llama", "qwen3", ... : GGUF general.architecture, or HF config.json model_type.
    virtual std::string architecture() const = 0;
    // GGUF key/values; for a safetensors folder, config.json flattened ("rope_scaling.factor") plus
    // "__safetensors.<key>" entries from the files' __metadata__.
    virtual const Metadata& metadata() const = 0;
    virtual const std::vector<TensorInfo>& tensors() const = 0;
    const TensorInfo* find(const std::string& name) const;
    const TensorInfo& get(const std::string& name) const;  // throws imp::Error naming the tensor and the file
    virtual std::string path() const = 0;
    virtual uint64_t file_bytes() const = 0;

protected:
    // Readers call this once their tensor list is final; find() then looks names up in a hash map instead of
    // scanning (it still falls back to a scan if tensors() no longer matches the index).
    void build_name_index();

private:
    std::unordered_map<std::string, size_t> name_index_;
};

// Opens a .gguf file, a .safetensors file, or a folder with model.safetensors[.index.json] (+ config.json).
// Throws imp::Error with a one-line message naming the file and the problem.
IMP_API std::unique_ptr<ModelSource> open_model(const std::string& path);

}  // namespace imp
