// imp SDK: an Arch recognises a model (GGUF general.architecture or HF model_type), reads its hyper-parameters,
// maps file tensor names to layer weights and builds the layer stack.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imp/layer.h"
#include "imp/model.h"

namespace imp {

class Registry;

// The model an Arch builds: token embedding -> layers -> final RMSNorm -> LM head -> logits.
struct ModelDesc {
    std::string arch;          // arch name that built it
    int64_t n_vocab = 0;
    int64_t n_embd = 0;
    int64_t n_ctx_train = 0;   // context length the model was trained for (0 = unknown)
    float norm_eps = 1e-5f;
    std::string tok_embd;      // tensor names
    std::string output_norm;
    std::string output;        // equal to tok_embd when the embeddings are tied
    std::unique_ptr<Metadata> hparams;  // normalized hyper-parameters handed to the layers (kept alive here)
    std::vector<std::unique_ptr<Layer>> layers;
};

class Arch {
public:
    virtual ~Arch() = default;
    virtual std::string name() const = 0;
    // Architecture strings this arch serves (GGUF general.architecture / HF model_type), for messages and listing.
    virtual std::vector<std::string> architectures() const = 0;
    virtual bool matches(const ModelSource& src) const = 0;
    // Reads hyper-parameters (throws imp::Error naming the missing/invalid key and file) and builds the layers
    // through the registry's layer kinds.
    virtual ModelDesc build(const ModelSource& src, const Registry& reg) const = 0;
};

}  // namespace imp
