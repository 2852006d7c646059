// Jinja values (Python-like: None, bool, int, float, str, list, dict, namespace, callable), their Python str()/repr()
// and truthiness, and the template's syntax tree.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/json.h"

namespace imp::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python dicts
// Free a list's or dict's storage without recursion: a value nested N deep (a namespace attribute wrapped in a list
// once a loop iteration) would otherwise be freed by N nested destructor calls and overflow the stack.
struct ListFree {
    void operator()(List* p) const noexcept;
};
struct DictFree {
    void operator()(Dict* p) const noexcept;
};
// The deepest nesting of lists, dicts and namespaces that printing, tojson and == follow (a namespace can hold
// itself); past it they are an imp::Error.
constexpr int kMaxValueDepth = 256;
struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    const Value* get(size_t i, const char* name) const;  // positional i or keyword `name`
};
using Func = std::function<Value(const Args&)>;

struct Value {
    enum Kind { Undefined, None, Bool, Int, Float, Str, List, Dict, Ns, Callable } kind = Undefined;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    // Str's text, shared: a copy of a value (set, loop items, list concatenation) never copies its bytes, so a
    // template cannot turn a 16 MB string into a copy per step.
    std::shared_ptr<const std::string> text;
    std::shared_ptr<jinja::List> list;
    std::shared_ptr<jinja::Dict> dict;  // Dict and Ns (namespace attributes)
    std::shared_ptr<Func> fn;

    static Value none() {
        Value v;
        v.kind = None;
        return v;
    }
    static Value boolean(bool x) {
        Value v;
        v.kind = Bool;
        v.b = x;
        return v;
    }
    static Value integer(int64_t x) {
        Value v;
        v.kind = Int;
        v.i = x;
        return v;
    }
    static Value number(double x) {
        Value v;
        v.kind = Float;
        v.f = x;
        return v;
    }
    static Value str(std::string x) {
        Value v;
        v.kind = Str;
        v.text = std::make_shared<const std::string>(std::move(x));
        return v;
    }
    // The text of a Str ("" for any other kind).
    const std::string& s() const {
        static const std::string empty;
        return text ? *text : empty;
    }
    static Value new_list(jinja::List l = {}) {
        Value v;
        v.kind = List;
        v.list = std::shared_ptr<jinja::List>(new jinja::List(std::move(l)), ListFree{});
        return v;
    }
    static Value new_dict(jinja::Dict d = {}) {
        Value v;
        v.kind = Dict;
        v.dict = std::shared_ptr<jinja::Dict>(new jinja::Dict(std::move(d)), DictFree{});
        return v;
    }
    static Value func(Func f) {
        Value v;
        v.kind = Callable;
        v.fn = std::make_shared<Func>(std::move(f));
        return v;
    }
    static Value from_json(const json::Value& j);

    bool defined() const { return kind != Undefined; }
    bool truthy() const;
    bool is_number() const { return kind == Int || kind == Float || kind == Bool; }
    double as_double() const { return kind == Float ? f : kind == Int ? double(i) : b ? 1 : 0; }
    const Value* find(const std::string& key) const;  // dict / namespace member
    std::string str_py() const;                       // Python str()
    std::string repr_py() const;                      // Python repr()
    const char* type_name() const;
};

bool equal(const Value& a, const Value& b);
// The longest text a value prints as (repr_py, str_py, json_dumps: imp::Error past it); the interpreter's limit on
// a string (Interp::kMaxSize).
constexpr size_t kMaxTextBytes = size_t(1) << 24;
// Throws imp::Error when a text of n bytes would pass kMaxTextBytes (filters that build strings call it as they grow).
void check_text(size_t n);
// json.dumps(ensure_ascii=False); indent < 0: compact (", " and ": "), else newlines and indent spaces a level.
std::string json_dumps(const Value& v, int indent, bool sort_keys);

// Syntax tree.
struct Expr;
using ExprP = std::shared_ptr<Expr>;
struct Expr {
    enum Kind { Lit, Name, Attr, Item, Slice, Call, Filter, Test, Unary, Binary, Cond, MakeList, MakeDict, MakeTuple };
    Kind kind;
    int line = 0;
    Value lit;
    std::string name;         // Name; Attr's attribute; Filter/Test name; Unary/Binary operator
    std::vector<ExprP> args;  // operands / call arguments (Slice: object, start, stop, step; null = absent)
    std::vector<std::pair<std::string, ExprP>> kwargs;
    bool negate = false;  // `is not`
    int depth = 1;        // the height of the tree under this node (the parser bounds it: kMaxParseNest)
};

struct Node;
using NodeP = std::shared_ptr<Node>;
struct Node {
    enum Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, Seq, CallBlock };
    Kind kind;
    int line = 0;
    std::string text;          // Text; Set/SetBlock/Macro/For target names (comma-joined for For)
    std::string attr;          // Set: namespace attribute (set ns.attr = ...)
    std::vector<ExprP> exprs;  // Output / Set value / If conditions / For iterable, filter
    std::vector<NodeP> body;   // Seq children; If: one Seq per branch (else last); For: body, else
    std::vector<std::pair<std::string, ExprP>> params;  // Macro parameters and defaults (null = none)
};

}  // namespace imp::jinja
