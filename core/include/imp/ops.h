// imp SDK: ops that plugins register. An op is a named computation with typed arguments; each device kind has its
// own kernel for it (a CPU reference and a CUDA kernel, say), registered by any plugin, and layers call it through
// an OpRef resolved once when the layer is built. The engine asks Registry::check_ops() whether an executor can
// run every op a model needs before any weight is loaded, and `imp-plugin-check` runs each op's conformance check
// (its CUDA kernel against its CPU reference).
//
// An op type is a struct with a unique dotted name and its arguments (declare it in a header the op's users share):
//   struct ScaleAdd {
//       static constexpr const char* name = "hello.scale_add";
//       struct Args { const float* x; float* y; int64_t n; float scale, add; };  // pointers: executor memory
//   };
// A kernel is a plain function `void kernel(imp::Executor& ex, const ScaleAdd::Args& a)`, registered with
//   reg.add_op<ScaleAdd>(imp::DeviceKind::CPU, scale_add_cpu);
//   reg.add_op<ScaleAdd>(imp::DeviceKind::CUDA, scale_add_cuda,
//                        [](const imp::Executor& ex) { return ex.cuda() && ex.cuda()->cc >= 80; });
//   reg.add_op_check("hello.scale_add", check_scale_add);
// and called from a layer with
//   imp::OpRef<ScaleAdd> scale_add_ = params.registry->op<ScaleAdd>();   // when the layer is built
//   scale_add_(ctx.ex, {x, y, n, 2.f, 0.f});                                // in forward(): no lookup
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "imp/executor.h"
#include "imp/export.h"

namespace imp {

// "Can this executor run the kernel?" (compute capability, a feature of the device). Empty: every executor of the
// kernel's device kind can.
using OpSupports = std::function<bool(const Executor&)>;
// A conformance check of one op: builds fresh random inputs from `seed` (never zeros), runs the op on `cpu` (its
// reference) and on `dev`, compares with a tolerance it states, and returns "" on a pass or one line saying what
// differed ("y[17]: cuda 0.51 vs cpu 0.5 (tolerance 1e-5 + 1e-4 rel)"). It may throw imp::Error.
using OpCheck = std::function<std::string(Executor& cpu, Executor& dev, uint64_t seed)>;

// Device kinds an op can have kernels for (indexes of DeviceKind).
inline constexpr int kDeviceKindCount = 2;
IMP_API const char* device_kind_name(DeviceKind d);  // "cpu", "cuda"

// One registered kernel, type-erased. Lives as long as the Registry.
struct OpEntry {
    std::string name;  // op name, "hello.scale_add"
    DeviceKind device = DeviceKind::CPU;
    std::string plugin;     // who registered it ("core" for the core's own ops)
    std::string args_type;  // mangled name of Op::Args: every kernel of one op takes the same Args
    size_t args_size = 0;
    void (*kernel)() = nullptr;  // really void (*)(Executor&, const Op::Args&)
    OpSupports supports;         // empty: any executor of `device`
    // Whether `ex` can run this kernel: same device kind, and supports(ex) (when set) says yes.
    bool supported(const Executor& ex) const { return ex.kind() == device && (!supports || supports(ex)); }
};

// A conformance check as registered (Registry::add_op_check).
struct OpCheckEntry {
    std::string op;
    std::string plugin;
    OpCheck check;
};

namespace detail {
// "op 'x' has no kernel for cuda (provided for: cpu by plugin 'y')"; entries: one per device kind, may be null.
[[noreturn]] IMP_API void throw_op_missing(const char* op, const OpEntry* const* entries, DeviceKind d);
}  // namespace detail

// A resolved op: the kernel of each device kind (or none). Obtained from Registry::op<Op>(); valid while the
// registry lives. Calling it costs an index and an indirect call.
template <class Op>
class OpRef {
public:
    using Args = typename Op::Args;
    using Kernel = void (*)(Executor&, const Args&);

    OpRef() = default;  // empty: every call throws
    // Runs the kernel for ex.kind(); throws imp::Error naming the op and the device when there is none. Does not
    // consult supports(): Registry::check_ops() answers that before load.
    void operator()(Executor& ex, const Args& a) const {
        const int k = static_cast<int>(ex.kind());
        const OpEntry* e = k >= 0 && k < kDeviceKindCount ? entries_[k] : nullptr;
        if (!e) detail::throw_op_missing(Op::name, entries_.data(), ex.kind());
        reinterpret_cast<Kernel>(e->kernel)(ex, a);
    }
    // The kernel entry for d, or null.
    const OpEntry* entry(DeviceKind d) const {
        const int k = static_cast<int>(d);
        return k >= 0 && k < kDeviceKindCount ? entries_[k] : nullptr;
    }
    bool has(DeviceKind d) const { return entry(d) != nullptr; }

private:
    friend class Registry;
    std::array<const OpEntry*, kDeviceKindCount> entries_{};
};

// One result of run_op_checks().
struct OpCheckResult {
    std::string op;
    std::string plugin;  // of the device kernel
    enum class Status { Pass, Fail, Skipped } status = Status::Pass;
    std::string message;  // Fail: what went wrong; Skipped: why (the device kernel does not support this executor)
};

class Registry;
// The conformance runner: for every op that has a kernel for dev.kind() (other than the CPU), runs its check
// `rounds` times (seeds seed, seed + 1, ...) against the CPU kernel. An op with a device kernel but no CPU kernel,
// or no check, fails; a device kernel whose supports(dev) is false is skipped. Also fails a check whose op has no
// kernel at all. Results sorted by op name.
IMP_API std::vector<OpCheckResult> run_op_checks(const Registry& reg, Executor& cpu, Executor& dev, uint64_t seed,
                                                 int rounds = 3);

// For op checks: "" when |got[i] - ref[i]| <= atol + rtol * |ref[i]| for every i and every value is finite (a NaN or
// Inf fails even where both sides have it), else one line naming `what`, the worst index, both values and the
// tolerance.
IMP_API std::string compare_close(const std::string& what, const float* ref, const float* got, size_t n, float atol,
                                  float rtol);

}  // namespace imp
