// Kernel names and launches through the driver's entry points (no link to libcuda: the executor must load where
// there is no driver): cuGraphKernelNodeGetParams gives the node's launch and its CUfunction (or CUkernel, for
// kernels of lazily loaded modules), cuFuncGetName / cuKernelGetName the name (cuBLAS's kernels too),
// cuGraphExecKernelNodeSetParams swaps a node's launch in the executable graph.
#include <cuda.h>
#include <cuda_runtime.h>

#include "exec/cuda/cuda_check.h"
#include "exec/cuda/graph_kernels.h"
#include "imp/cuda/launch.cuh"
#include "imp/error.h"

namespace imp::cuda_graphs {

namespace {

// What an ablated node runs: nothing but the programmatic-dependent-launch handshake.
__global__ void ablated_kernel() {
    ::imp::cuda::pdl_launch_dependents();
    ::imp::cuda::pdl_wait();
}

using GetParamsFn = CUresult(CUDAAPI*)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS_v2*);
using ExecSetParamsFn = CUresult(CUDAAPI*)(CUgraphExec, CUgraphNode, const CUDA_KERNEL_NODE_PARAMS_v2*);
using FuncNameFn = CUresult(CUDAAPI*)(const char**, CUfunction);
using KernelNameFn = CUresult(CUDAAPI*)(const char**, CUkernel);

struct Driver {
    GetParamsFn get_params = nullptr;
    ExecSetParamsFn exec_set_params = nullptr;
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
                          entry<ExecSetParamsFn>("cuGraphExecKernelNodeSetParams", 12000),
                          entry<FuncNameFn>("cuFuncGetName", 12030), entry<KernelNameFn>("cuKernelGetName", 12030)};
    return d;
}

// The no-op's CUfunction, allowed the non-portable cluster sizes some captured launches use (the router's 16).
CUfunction ablated_function() {
    static const CUfunction f = [] {
        IMP_CUDA_CHECK(cudaFuncSetAttribute(ablated_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
        cudaFunction_t fn = nullptr;
        IMP_CUDA_CHECK(cudaGetFuncBySymbol(&fn, reinterpret_cast<const void*>(ablated_kernel)));
        return reinterpret_cast<CUfunction>(fn);
    }();
    return f;
}

std::string name_of(const CUDA_KERNEL_NODE_PARAMS_v2& p) {
    const Driver& d = driver();
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
    const Driver& d = driver();
    std::vector<KernelNode> out;
    for (cudaGraphNode_t node : nodes) {
        cudaGraphNodeType type{};
        IMP_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
        if (type != cudaGraphNodeTypeKernel) continue;
        KernelNode k;
        k.node = node;
        k.name = "?";
        auto p = std::make_shared<CUDA_KERNEL_NODE_PARAMS_v2>();
        if (d.get_params && d.get_params(reinterpret_cast<CUgraphNode>(node), p.get()) == CUDA_SUCCESS) {
            k.name = name_of(*p);
            k.grid[0] = p->gridDimX, k.grid[1] = p->gridDimY, k.grid[2] = p->gridDimZ;
            k.params = p;
        }
        out.push_back(std::move(k));
    }
    return out;
}

bool kernel_matches(const KernelNode& k, const std::string& pattern) {
    const size_t at = pattern.find('@');
    const std::string part = pattern.substr(0, at);
    bool ok = part.empty() || k.name.find(part) != std::string::npos;
    for (size_t i = at; i != std::string::npos;) {  // every condition parsed, so a malformed one always throws
        const size_t next = pattern.find('@', i + 1);
        const std::string cond = pattern.substr(i + 1, next == std::string::npos ? std::string::npos : next - i - 1);
        const char dim = cond.empty() ? '\0' : cond[0];
        const char op = cond.size() > 1 ? cond[1] : '\0';
        const std::string num = cond.size() > 2 ? cond.substr(2) : "";
        const bool digits = !num.empty() && num.size() <= 9 && num.find_first_not_of("0123456789") == std::string::npos;
        if ((dim != 'x' && dim != 'y' && dim != 'z') || (op != '<' && op != '=' && op != '>') || !digits)
            throw Error("bench.ablate '" + pattern + "': condition '" + cond +
                        "' is not a grid dimension (x, y, z), a comparison (<, =, >) and a number, e.g. y>1");
        const unsigned g = k.grid[dim - 'x'], v = unsigned(std::stoul(num));
        ok = ok && (op == '<' ? g < v : op == '=' ? g == v : g > v);
        i = next;
    }
    return ok;
}

int set_enabled(void* exec, const std::vector<KernelNode>& nodes, const std::string& pattern, bool enabled) {
    const Driver& d = driver();
    int n = 0;
    for (const KernelNode& k : nodes) {
        if (!pattern.empty() && !kernel_matches(k, pattern)) continue;
        if (!d.exec_set_params || !k.params)
            throw Error("cuda: the driver cannot read or update the graph's kernel node '" + k.name +
                        "' (cuGraphKernelNodeGetParams / cuGraphExecKernelNodeSetParams, CUDA 12.0+)");
        const auto& orig = *static_cast<const CUDA_KERNEL_NODE_PARAMS_v2*>(k.params.get());
        CUDA_KERNEL_NODE_PARAMS_v2 p = orig;
        if (!enabled) {  // the no-op on the node's own grid (a cluster's shape still divides it), one warp per CTA
            p.func = ablated_function();
            p.kern = nullptr;
            p.ctx = nullptr;
            p.blockDimX = 32, p.blockDimY = 1, p.blockDimZ = 1;
            p.sharedMemBytes = 0;
            p.kernelParams = nullptr;
            p.extra = nullptr;
        }
        const CUresult r = d.exec_set_params(static_cast<CUgraphExec>(exec), reinterpret_cast<CUgraphNode>(k.node), &p);
        if (r != CUDA_SUCCESS)
            throw Error("cuda: cuGraphExecKernelNodeSetParams failed (" + std::to_string(int(r)) + ") for kernel '" +
                        k.name + "'");
        ++n;
    }
    return n;
}

}  // namespace imp::cuda_graphs
