// The Jinja interpreter's state: variable scopes and the evaluation of expressions and statements (eval.cpp),
// filters, tests, methods and global functions (builtins.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace imp::jinja {

class Interp {
public:
    explicit Interp(std::string name) : name_(std::move(name)) {}
    // Empties every namespace the template made: `set ns.a = ns` (or a list holding ns) is a cycle that reference
    // counting alone would never free.
    ~Interp();
    Interp(const Interp&) = delete;
    Interp& operator=(const Interp&) = delete;
    std::string run(const Node& root, const json::Value& context);

    // Limits on what a template may make imp do (a model file's template is input like any other): evaluation steps
    // (statements and expressions; a loop over range(10**9) stops here), nesting (macro recursion), and the size of
    // any string or list it builds, the output included.
    static constexpr uint64_t kMaxSteps = uint64_t(1) << 20;
    static constexpr int kMaxDepth = 128;
    static constexpr size_t kMaxSize = kMaxTextBytes;    // bytes of a string
    static constexpr size_t kMaxItems = size_t(1) << 20;  // items of a list (range() included)

private:
    // One step of evaluation, one level of nesting while it lives.
    struct Step {
        Interp& in;
        Step(Interp& i, int line);
        ~Step() { --in.depth_; }
    };
    void check_size(size_t n, int line, size_t limit = kMaxSize) const;
    void spend(uint64_t n, int line);  // n steps (a range() of n items costs n)
    [[noreturn]] void fail(int line, const std::string& what) const;
    Value* lookup(const std::string& n);
    void assign(const std::string& n, Value v);
    Value eval(const Expr& e);
    Value binary(const Expr& e);
    Value slice(const Value& o, const Value& start, const Value& stop, const Value& step, int line);
    Value get_attr(const Value& obj, const std::string& attr, int line);
    Value get_item(const Value& obj, const Value& key, int line);
    std::string describe(const Expr& e) const;
    void exec(const Node& n, std::string& out);
    void set_target(const Node& n, Value v);
    void run_for(const Node& n, std::string& out);
    void define_macro(const Node& n);
    // builtins.cpp
    void install_globals();
    Value filter(const std::string& name, Args& a, int line);
    bool test(const std::string& name, const Args& a, int line);
    Value method(const Value& obj, const std::string& name, int line);

    std::string name_;
    std::vector<std::vector<std::pair<std::string, Value>>> scopes_;
    int cur_line_ = 0;
    uint64_t steps_ = 0;
    int depth_ = 0;
    std::vector<std::weak_ptr<jinja::Dict>> namespaces_;  // the attributes of every namespace() made
};

}  // namespace imp::jinja
