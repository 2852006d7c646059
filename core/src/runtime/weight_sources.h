// The file side of the load plan: a model's tensors by name, the WeightSource of a declared weight name (the tensor
// and the tensors under its prefix, quant_format.h's rule), expert tensor names from a per-expert pattern, and
// short descriptions of sources for error messages.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "imp/model.h"
#include "imp/quant_format.h"

namespace imp {

class TensorIndex {
public:
    explicit TensorIndex(const ModelSource& src);
    const TensorInfo* find(const std::string& name) const;
    // The tensor `name` (null when absent) and every tensor under its prefix as aux: for "X.weight" each "X.<s>"
    // under key "<s>"; for other names each "<name>.<s>" and "<name>_<s>" under key "<s>".
    WeightSource source(const std::string& name) const;

private:
    void add_under(const std::string& base, const TensorInfo* main, WeightSource& out) const;
    std::map<std::string, const TensorInfo*> by_name_;
};

// True when the source holds no file tensor at all (nothing of that name or under its prefix).
bool source_empty(const WeightSource& s);
// Every file tensor of s (main, aux, parts', experts'), in order.
std::vector<const TensorInfo*> source_tensors(const WeightSource& s);
// "Q4_K [64, 32]", "U8 [64, 16] + weight_scale F8_E4M3 [64, 2] + ...", the parts' or first expert's likewise.
std::string source_summary(const WeightSource& s);
// pattern with "{e}" replaced by e; throws imp::Error when the pattern has no "{e}".
std::string expert_tensor_name(const std::string& pattern, int64_t e);

}  // namespace imp
