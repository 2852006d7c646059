// The kernel nodes of a captured CUDA graph by kernel name, and switching them off in its instantiated form
// (`imp bench` bench.ablate: a decode step replayed without a class of kernels shows what that class really costs
// in the step, overlap with its neighbours included, where a profiler times each kernel alone). Needs no CUDA
// headers to include; handles are cudaGraph_t / cudaGraphExec_t / cudaGraphNode_t as void*.
#pragma once
#include <string>
#include <vector>

namespace imp::cuda_graphs {

struct KernelNode {
    void* node = nullptr;  // cudaGraphNode_t of the captured graph
    std::string name;      // the kernel's (mangled) name; "?" when the driver cannot tell
};

// Every kernel node of graph (cudaGraph_t), in the order cudaGraphGetNodes gives them.
std::vector<KernelNode> kernel_nodes(void* graph);

// Sets the nodes of `nodes` whose name contains `pattern` (every node when pattern is empty) enabled or disabled in
// exec (cudaGraphExec_t instantiated from their graph); returns how many it set.
int set_enabled(void* exec, const std::vector<KernelNode>& nodes, const std::string& pattern, bool enabled);

}  // namespace imp::cuda_graphs
