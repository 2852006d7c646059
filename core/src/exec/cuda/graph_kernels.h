// The kernel nodes of a captured CUDA graph by kernel name, and standing a no-op kernel in for some of them in its
// instantiated form (`imp bench` bench.ablate: a decode step replayed without a class of kernels shows what that
// class really costs in the step, overlap with its neighbours included, where a profiler times each kernel alone).
// Needs no CUDA headers to include; handles are cudaGraph_t / cudaGraphExec_t / cudaGraphNode_t as void*.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace imp::cuda_graphs {

struct KernelNode {
    void* node = nullptr;  // cudaGraphNode_t of the captured graph
    std::string name;      // the kernel's (mangled) name; "?" when the driver cannot tell
    unsigned grid[3] = {0, 0, 0};  // its launch grid (0: unknown)
    // The node's launch as captured (CUDA_KERNEL_NODE_PARAMS_v2; its argument pointers belong to the captured
    // graph's node, which outlives the executable graph); null when the driver could not read it.
    std::shared_ptr<void> params;
};

// Every kernel node of graph (cudaGraph_t), in the order cudaGraphGetNodes gives them.
std::vector<KernelNode> kernel_nodes(void* graph);

// Whether node k matches pattern "PART[@COND]...": its name contains PART (any name when PART is empty) and its grid
// meets every COND, a grid dimension x, y or z, a comparison <, = or >, and a number ("wo_gemv_kernel@y>1": the
// expert launches of that kernel, one grid row per routed pair; "@x<64"). A malformed condition is an imp::Error
// naming the pattern.
bool kernel_matches(const KernelNode& k, const std::string& pattern);

// In exec (cudaGraphExec_t instantiated from the nodes' graph), the nodes of `nodes` that match `pattern`
// (kernel_matches; every node when pattern is empty) run a no-op kernel on their own grid (off) or their captured launch again (on);
// returns how many it set. The no-op waits for the kernels before it (griddepcontrol.wait) like every kernel of a
// programmatic-dependent-launch chain, so the kernels after it still start only once those have finished, as a
// disabled (empty) node would not guarantee. Throws imp::Error when the driver cannot update kernel nodes.
int set_enabled(void* exec, const std::vector<KernelNode>& nodes, const std::string& pattern, bool enabled);

}  // namespace imp::cuda_graphs
