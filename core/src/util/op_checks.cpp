// The op conformance runner (imp/ops.h: run_op_checks; op_checks.h: run_op_check) and the comparison its checks use
// (compare_close).
#include <cmath>
#include <cstdio>
#include <exception>
#include <set>

#include "imp/error.h"
#include "imp/ops.h"
#include "imp/registry.h"
#include "util/op_checks.h"

namespace imp {

namespace {

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.9g", v);
    return b;
}

void check_executors(const Executor& cpu, const Executor& dev) {
    if (cpu.kind() != DeviceKind::CPU)
        throw Error("run_op_checks: the reference executor " + cpu.name() + " is not a CPU");
    if (dev.kind() == DeviceKind::CPU)
        throw Error("run_op_checks: the executor under test " + dev.name() + " is a CPU; give a device executor");
}

OpCheckResult check_one(const Registry& reg, const std::string& name, Executor& cpu, Executor& dev, uint64_t seed,
                        int rounds) {
    const std::string dk = device_kind_name(dev.kind());
    const OpEntry* ref = reg.find_op(name, DeviceKind::CPU);
    const OpEntry* ker = reg.find_op(name, dev.kind());
    const OpCheckEntry* check = reg.find_op_check(name);
    OpCheckResult r;
    r.op = name;
    auto set = [&](OpCheckResult::Status s, std::string m) {
        r.status = s;
        r.message = std::move(m);
    };
    if (!ker && !ref && !check) {
        set(OpCheckResult::Status::Fail, "no op '" + name + "' is registered");
        return r;
    }
    r.plugin = ker ? ker->plugin : check ? check->plugin : ref->plugin;
    if (!ker && !ref) {
        set(OpCheckResult::Status::Fail, "a check is registered (plugin '" + check->plugin + "') but no kernel");
    } else if (!ker) {
        set(OpCheckResult::Status::Skipped, "no " + dk + " kernel");
    } else if (!ref) {
        set(OpCheckResult::Status::Fail, "a " + dk + " kernel but no cpu reference kernel");
    } else if (!check) {
        set(OpCheckResult::Status::Fail, "cpu and " + dk + " kernels but no check (Registry::add_op_check)");
    } else if (!ker->supported(dev)) {
        set(OpCheckResult::Status::Skipped, "the " + dk + " kernel does not support " + dev.name());
    } else if (!ref->supported(cpu)) {
        set(OpCheckResult::Status::Skipped, "the cpu kernel does not support " + cpu.name());
    } else {
        for (int i = 0; i < rounds && r.status == OpCheckResult::Status::Pass; ++i) {
            const uint64_t s = seed + uint64_t(i);
            std::string msg;
            try {
                msg = check->check(cpu, dev, s);
            } catch (const std::exception& e) {
                msg = std::string("threw: ") + e.what();
            }
            if (!msg.empty()) set(OpCheckResult::Status::Fail, "seed " + std::to_string(s) + ": " + msg);
        }
    }
    return r;
}

}  // namespace

std::vector<OpCheckResult> run_op_checks(const Registry& reg, Executor& cpu, Executor& dev, uint64_t seed, int rounds) {
    check_executors(cpu, dev);
    std::set<std::string> names;
    for (const OpEntry* e : reg.ops()) names.insert(e->name);
    for (const OpCheckEntry* c : reg.op_checks()) names.insert(c->op);
    std::vector<OpCheckResult> out;
    for (const auto& name : names) out.push_back(check_one(reg, name, cpu, dev, seed, rounds));
    return out;
}

OpCheckResult run_op_check(const Registry& reg, const std::string& name, Executor& cpu, Executor& dev, uint64_t seed,
                           int rounds) {
    check_executors(cpu, dev);
    return check_one(reg, name, cpu, dev, seed, rounds);
}

std::string compare_close(const std::string& what, const float* ref, const float* got, size_t n, float atol,
                          float rtol) {
    size_t bad = 0, worst = 0;
    double worst_ratio = -1;
    for (size_t i = 0; i < n; ++i) {
        const double a = ref[i], b = got[i];
        double ratio;
        // A NaN or Inf on either side fails, even when both agree: a check whose reference overflows or is NaN
        // compares nothing.
        if (!std::isfinite(a) || !std::isfinite(b))
            ratio = INFINITY;
        else if (a == b)
            ratio = 0;
        else
            ratio = std::fabs(a - b) / (double(atol) + double(rtol) * std::fabs(a));
        if (ratio > 1) ++bad;
        if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
    }
    if (bad == 0) return "";
    return what + "[" + std::to_string(worst) + "]: got " + num(got[worst]) + ", reference " + num(ref[worst]) +
           " (tolerance " + num(atol) + " + " + num(rtol) + " * |reference|); " + std::to_string(bad) + " of " +
           std::to_string(n) + " outside";
}

}  // namespace imp
