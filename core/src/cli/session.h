// A loaded model ready to generate: registry + plugins (from the profile, or chosen from the model file's
// architecture) with their [plugin.<name>] settings applied, executor, model source, engine and tokenizer. Used by
// `imp run`, `imp bench`, `imp plan` and the end-to-end tests.
#pragma once
#include <memory>
#include <string>

#include "imp/executor.h"
#include "imp/model.h"
#include "imp/registry.h"
#include "plugin/loader.h"
#include "profile/profile.h"
#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"
#include "util/core_settings.h"

namespace imp {

// "auto" -> the executor to use on this machine; "cuda" without a CUDA executor in the build -> imp::Error.
// The core's settings ([plugin.core]) choose the CUDA executor's kernels.
std::unique_ptr<Executor> make_executor(const Profile::Runtime& rt, const CoreSettings& cs);
// runtime.threads -> the CPU executor's worker count: a request above the cores this process may use is lowered to
// them, with a warning; 0 (all cores) is kept.
int cpu_threads(int requested);
// runtime.kv_dtype -> the KV element type on this executor ("auto": f32 on the CPU, bf16 on CUDA).
DType kv_dtype_for(const std::string& name, const Executor& ex);

class Session {
public:
    // Load: plugins, settings, executor, engine (weights uploaded), tokenizer. Plan: the same up to the engine's
    // preflight (plan() holds the report; engine() must not be called).
    enum class Mode { Load, Plan, Serve };  // Serve: Load, with the server's engine options (prefix caching)
    explicit Session(const Profile& p, Mode mode = Mode::Load);
    ~Session();
    Engine& engine() { return *engine_; }
    const EnginePlan& plan() const { return *plan_; }
    // Throws imp::Error when the model carries no tokenizer (e.g. a safetensors folder without GGUF metadata).
    const Tokenizer& tokenizer() const;
    const ModelSource& model() const { return *src_; }
    const Registry& registry() const { return *reg_; }
    const PluginLoader& loader() const { return *loader_; }
    std::string executor_name() const { return ex_->name(); }
    Executor& executor() { return *ex_; }

private:
    std::unique_ptr<Registry> reg_;
    std::unique_ptr<PluginLoader> loader_;
    std::unique_ptr<ModelSource> src_;
    std::unique_ptr<Executor> ex_;
    std::unique_ptr<Engine> engine_;
    std::unique_ptr<EnginePlan> plan_;
    std::unique_ptr<Tokenizer> tok_;
};

}  // namespace imp
