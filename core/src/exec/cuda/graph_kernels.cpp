// Kernel names through the driver's entry points (no link to libcuda: the executor must load where there is no
// driver): cuGraphKernelNodeGetParams gives the node's CUfunction (or CUkernel, for kernels of lazily loaded
// modules), cuFuncGetName / cuKernelGetName its name. cuBLAS's kernels are named this way as well as imp's.
#include "exec/cuda/graph_kernels.h"

#include <cuda.h>
#include <cuda_runtime.h>

#include "exec/cuda/cuda_check.h"

namespace imp::cuda_graphs {

namespace {

using GetParamsFn = CUresult(CUDAAPI*)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS_v2*);
using FuncNameFn = CUresult(CUDAAPI*)(const char**, CUfunction);
using KernelNameFn = CUresult(CUDAAPI*)(const char**, CUkernel);

struct Driver {
    GetParamsFn get_params = nullptr;
    FuncNameFn func_name = nullptr;
    KernelNameFn kernel_name = nullptr;
};

template <class Fn>
Fn entry(const char* symbol, unsigned version) {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion(symbol, &p, version, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
        (void)cudaGetLastError();
        return nullptr;
    }
    return reinterpret_cast<Fn>(p);
}

const Driver& driver() {
    static const Driver d{entry<GetParamsFn>("cuGraphKernelNodeGetParams", 12000),
                          entry<FuncNameFn>("cuFuncGetName", 12030), entry<KernelNameFn>("cuKernelGetName", 12030)};
    return d;
}

std::string name_of(CUgraphNode node) {
    const Driver& d = driver();
    CUDA_KERNEL_NODE_PARAMS_v2 p{};
    if (!d.get_params || d.get_params(node, &p) != CUDA_SUCCESS) return "?";
    const char* name = nullptr;
    if (p.func && d.func_name && d.func_name(&name, p.func) == CUDA_SUCCESS && name) return name;
    if (p.kern && d.kernel_name && d.kernel_name(&name, p.kern) == CUDA_SUCCESS && name) return name;
    return "?";
}

}  // namespace

std::vector<KernelNode> kernel_nodes(void* graph) {
    auto g = static_cast<cudaGraph_t>(graph);
    size_t n = 0;
    IMP_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
    std::vector<cudaGraphNode_t> nodes(n);
    if (n) IMP_CUDA_CHECK(cudaGraphGetNodes(g, nodes.data(), &n));
    std::vector<KernelNode> out;
    for (cudaGraphNode_t node : nodes) {
        cudaGraphNodeType type{};
        IMP_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
        if (type == cudaGraphNodeTypeKernel) out.push_back({node, name_of(reinterpret_cast<CUgraphNode>(node))});
    }
    return out;
}

int set_enabled(void* exec, const std::vector<KernelNode>& nodes, const std::string& pattern, bool enabled) {
    int n = 0;
    for (const KernelNode& k : nodes)
        if (pattern.empty() || k.name.find(pattern) != std::string::npos) {
            IMP_CUDA_CHECK(cudaGraphNodeSetEnabled(static_cast<cudaGraphExec_t>(exec),
                                                   static_cast<cudaGraphNode_t>(k.node), enabled ? 1 : 0));
            ++n;
        }
    return n;
}

}  // namespace imp::cuda_graphs
