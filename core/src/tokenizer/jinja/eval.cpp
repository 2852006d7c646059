// Jinja evaluation: scopes, statements, operators, attribute and item access, loop variables, macros, tests.
// Filters and methods: builtins.cpp.
#include "tokenizer/jinja/eval.h"

#include <cmath>

#include "imp/error.h"
#include "tokenizer/jinja/jinja.h"
#include "tokenizer/jinja/parse.h"

namespace imp::jinja {

namespace {
struct BreakSignal {};
struct ContinueSignal {};
}  // namespace

[[noreturn]] void Interp::fail(int line, const std::string& what) const {
    throw Error(name_ + ":" + std::to_string(line) + ": " + what);
}

Value* Interp::lookup(const std::string& n) {
    for (size_t k = scopes_.size(); k-- > 0;)
        for (auto& [key, v] : scopes_[k])
            if (key == n) return &v;
    return nullptr;
}

void Interp::assign(const std::string& n, Value v) {
    for (auto& [key, old] : scopes_.back())
        if (key == n) {
            old = std::move(v);
            return;
        }
    scopes_.back().emplace_back(n, std::move(v));
}

Value Interp::get_attr(const Value& obj, const std::string& attr, int line) {
    if (const Value* m = obj.find(attr)) return *m;
    if (obj.kind == Value::Str || obj.kind == Value::List || obj.kind == Value::Dict) return method(obj, attr, line);
    return Value();
}

Value Interp::get_item(const Value& obj, const Value& key, int line) {
    if (obj.kind == Value::List || obj.kind == Value::Str) {
        if (key.kind != Value::Int) {
            if (key.kind == Value::Str) return get_attr(obj, key.s(), line);
            return Value();
        }
        const int64_t n = obj.kind == Value::List ? int64_t(obj.list->size()) : int64_t(obj.s().size());
        int64_t i = key.i < 0 ? key.i + n : key.i;
        if (i < 0 || i >= n) return Value();
        return obj.kind == Value::List ? (*obj.list)[size_t(i)] : Value::str(obj.s().substr(size_t(i), 1));
    }
    if (key.kind == Value::Str) return get_attr(obj, key.s(), line);
    return Value();
}

Interp::Step::Step(Interp& i, int line) : in(i) {
    ++in.depth_;
    in.spend(1, line);
    if (in.depth_ > kMaxDepth)
        in.fail(line, "the template nests deeper than imp's limit of " + std::to_string(kMaxDepth) +
                          " (a macro calling itself?)");
}

void Interp::spend(uint64_t n, int line) {
    steps_ += n;
    if (steps_ > kMaxSteps)
        fail(line, "the template takes more than imp's limit of " + std::to_string(kMaxSteps) + " evaluation steps");
}

void Interp::check_size(size_t n, int line, size_t limit) const {
    if (n > limit)
        fail(line, "the template builds a value of " + std::to_string(n) + (limit == kMaxItems ? " items" : " bytes") +
                       ", more than imp's limit of " + std::to_string(limit));
}

Value Interp::eval(const Expr& e) {
    const Step step(*this, e.line);
    switch (e.kind) {
        case Expr::Lit:
            return e.lit;
        case Expr::Name: {
            if (Value* v = lookup(e.name)) return *v;
            return Value();
        }
        case Expr::Attr: {
            Value o = eval(*e.args[0]);
            if (!o.defined()) fail(e.line, "'" + e.name + "' of an undefined value");
            return get_attr(o, e.name, e.line);
        }
        case Expr::Item: {
            Value o = eval(*e.args[0]);
            if (!o.defined()) fail(e.line, "item of an undefined value");
            return get_item(o, eval(*e.args[1]), e.line);
        }
        case Expr::Slice:
            return slice(eval(*e.args[0]), e.args[1] ? eval(*e.args[1]) : Value(),
                         e.args[2] ? eval(*e.args[2]) : Value(), e.args[3] ? eval(*e.args[3]) : Value(), e.line);
        case Expr::Call: {
            Args a;
            for (size_t k = 1; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
            for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x));
            Value f = eval(*e.args[0]);
            if (f.kind != Value::Callable) fail(e.line, "'" + describe(*e.args[0]) + "' is not callable");
            cur_line_ = e.line;
            return (*f.fn)(a);
        }
        case Expr::Filter: {
            Args a;
            a.pos.push_back(eval(*e.args[0]));
            for (size_t k = 1; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
            for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x));
            return filter(e.name, a, e.line);
        }
        case Expr::Test: {
            Args a;
            for (const auto& x : e.args) a.pos.push_back(eval(*x));
            for (const auto& [k, x] : e.kwargs) a.kw.emplace_back(k, eval(*x));
            const bool r = test(e.name, a, e.line);
            return Value::boolean(e.negate ? !r : r);
        }
        case Expr::Unary: {
            Value v = eval(*e.args[0]);
            if (e.name == "not") return Value::boolean(!v.truthy());
            if (v.kind == Value::Int) {
                if (e.name == "-" && v.i == INT64_MIN) fail(e.line, "integer overflow in unary '-'");
                return Value::integer(e.name == "-" ? -v.i : v.i);
            }
            if (v.kind == Value::Float) return Value::number(e.name == "-" ? -v.f : v.f);
            fail(e.line, "bad operand for unary " + e.name + ": " + v.type_name());
        }
        case Expr::Binary:
            return binary(e);
        case Expr::Cond: {
            if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
            return e.args[2] ? eval(*e.args[2]) : Value();
        }
        case Expr::MakeList:
        case Expr::MakeTuple: {
            List l;
            for (const auto& x : e.args) l.push_back(eval(*x));
            return Value::new_list(std::move(l));
        }
        case Expr::MakeDict: {
            Dict d;
            for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
                Value key = eval(*e.args[k]);
                Value val = eval(*e.args[k + 1]);
                bool found = false;
                for (auto& [dk, dv] : d)
                    if (dk == key.str_py()) dv = val, found = true;
                if (!found) d.emplace_back(key.str_py(), val);
            }
            return Value::new_dict(std::move(d));
        }
    }
    return Value();
}

std::string Interp::describe(const Expr& e) const {
    if (e.kind == Expr::Name) return e.name;
    if (e.kind == Expr::Attr) return describe(*e.args[0]) + "." + e.name;
    return "expression";
}

Value Interp::binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
        Value l = eval(*e.args[0]);
        return l.truthy() ? eval(*e.args[1]) : l;
    }
    if (op == "or") {
        Value l = eval(*e.args[0]);
        return l.truthy() ? l : eval(*e.args[1]);
    }
    Value l = eval(*e.args[0]), r = eval(*e.args[1]);
    if (op == "~") {
        Value v = Value::str(l.str_py() + r.str_py());
        check_size(v.s().size(), e.line);
        return v;
    }
    if (op == "==") return Value::boolean(equal(l, r));
    if (op == "!=") return Value::boolean(!equal(l, r));
    if (op == "in" || op == "not in") {
        bool in = false;
        if (r.kind == Value::Str)
            in = l.kind == Value::Str && r.s().find(l.s()) != std::string::npos;
        else if (r.kind == Value::List)
            for (const Value& x : *r.list) in = in || equal(x, l);
        else if (r.kind == Value::Dict || r.kind == Value::Ns)
            in = l.kind == Value::Str && r.find(l.s());
        else if (!r.defined())
            fail(e.line, "'in' on an undefined value");
        return Value::boolean(op == "in" ? in : !in);
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
        int c;
        if (l.is_number() && r.is_number())
            c = l.as_double() < r.as_double() ? -1 : l.as_double() > r.as_double();
        else if (l.kind == Value::Str && r.kind == Value::Str)
            c = l.s().compare(r.s());
        else
            fail(e.line, std::string("'") + op + "' between " + l.type_name() + " and " + r.type_name());
        return Value::boolean(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (op == "+" && l.kind == Value::Str && r.kind == Value::Str) {
        check_size(l.s().size() + r.s().size(), e.line);
        return Value::str(l.s() + r.s());
    }
    if (op == "+" && l.kind == Value::List && r.kind == Value::List) {
        check_size(l.list->size() + r.list->size(), e.line, kMaxItems);
        List x = *l.list;
        x.insert(x.end(), r.list->begin(), r.list->end());
        return Value::new_list(std::move(x));
    }
    if (op == "*" && l.kind == Value::Str && r.kind == Value::Int) {
        if (r.i > 0) check_size(r.i > int64_t(kMaxSize) ? kMaxSize + 1 : l.s().size() * size_t(r.i), e.line);
        std::string s;
        for (int64_t k = 0; k < r.i; ++k) s += l.s();
        return Value::str(s);
    }
    if (!l.is_number() || !r.is_number())
        fail(e.line, "unsupported operand types for " + op + ": " + l.type_name() + " and " + r.type_name());
    const bool ints = l.kind != Value::Float && r.kind != Value::Float;
    const int64_t li = l.kind == Value::Bool ? l.b : l.i, ri = r.kind == Value::Bool ? r.b : r.i;
    const double lf = l.as_double(), rf = r.as_double();
    int64_t res = 0;  // integer arithmetic that would overflow int64 is an error, not undefined behaviour
    auto checked = [&](bool overflow) {
        if (overflow) fail(e.line, "integer overflow in '" + op + "'");
        return Value::integer(res);
    };
    if (op == "+") return ints ? checked(__builtin_add_overflow(li, ri, &res)) : Value::number(lf + rf);
    if (op == "-") return ints ? checked(__builtin_sub_overflow(li, ri, &res)) : Value::number(lf - rf);
    if (op == "*") return ints ? checked(__builtin_mul_overflow(li, ri, &res)) : Value::number(lf * rf);
    if ((op == "/" || op == "//" || op == "%") && rf == 0) fail(e.line, "division by zero");
    if (op == "/") return Value::number(lf / rf);
    if (op == "//") {
        if (!ints) return Value::number(std::floor(lf / rf));
        // exact integer floor division (through double, 2^63 - 5 // 1 rounded up past INT64_MAX)
        if (li == INT64_MIN && ri == -1) fail(e.line, "integer overflow in '" + op + "'");
        int64_t q = li / ri;
        if (li % ri != 0 && ((li < 0) != (ri < 0))) --q;
        return Value::integer(q);
    }
    if (op == "%") {
        if (ints) {
            int64_t m = ri == -1 ? 0 : li % ri;  // INT64_MIN % -1 overflows
            if (m != 0 && ((m < 0) != (ri < 0))) m += ri;
            return Value::integer(m);
        }
        double m = std::fmod(lf, rf);
        if (m != 0 && ((m < 0) != (rf < 0))) m += rf;
        return Value::number(m);
    }
    if (op == "**") {
        if (!ints || ri < 0) return Value::number(std::pow(lf, rf));
        // exact integer power by squaring; past int64 an error, as + - * (pow through double lost the low bits
        // above 2^53 and its conversion back overflowed)
        int64_t base = li, exp = ri;
        res = 1;
        bool overflow = false;
        while (exp > 0 && !overflow) {
            if (exp & 1) overflow = __builtin_mul_overflow(res, base, &res);
            exp >>= 1;
            if (exp > 0 && !overflow) overflow = __builtin_mul_overflow(base, base, &base);
        }
        return checked(overflow);
    }
    fail(e.line, "unknown operator " + op);
}

Value Interp::slice(const Value& o, const Value& start, const Value& stop, const Value& step, int line) {
    const int64_t n = o.kind == Value::List ? int64_t(o.list->size()) : o.kind == Value::Str ? int64_t(o.s().size()) : -1;
    if (n < 0) fail(line, std::string("cannot slice a ") + o.type_name());
    const int64_t st = step.kind == Value::Int ? step.i : 1;
    if (st == 0) fail(line, "slice step cannot be zero");
    auto norm = [&](const Value& v, int64_t dflt) {
        if (v.kind != Value::Int) return dflt;
        int64_t x = v.i < 0 ? v.i + n : v.i;
        if (st > 0) return std::clamp<int64_t>(x, 0, n);
        return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t b = norm(start, st > 0 ? 0 : n - 1), e = norm(stop, st > 0 ? n : -1);
    List l;
    std::string s;
    for (__int128 k = b; st > 0 ? k < e : k > e; k += st) {  // 128 bits: 1 + a step near 2^63 must not overflow
        if (o.kind == Value::List)
            l.push_back((*o.list)[size_t(k)]);
        else
            s += o.s()[size_t(k)];
    }
    return o.kind == Value::List ? Value::new_list(std::move(l)) : Value::str(s);
}

void Interp::exec(const Node& n, std::string& out) {
    const Step step(*this, n.line);
    check_size(out.size(), n.line);
    switch (n.kind) {
        case Node::Text:
            out += n.text;
            break;
        case Node::Output:
            out += eval(*n.exprs[0]).str_py();
            break;
        case Node::Seq:
            for (const auto& c : n.body) exec(*c, out);
            break;
        case Node::If:
            for (size_t k = 0; k < n.body.size(); ++k)
                if (k >= n.exprs.size() || eval(*n.exprs[k]).truthy()) {
                    exec(*n.body[k], out);
                    break;
                }
            break;
        case Node::For:
            run_for(n, out);
            break;
        case Node::Set: {
            Value v = eval(*n.exprs[0]);
            set_target(n, std::move(v));
            break;
        }
        case Node::SetBlock: {
            std::string s;
            exec(*n.body[0], s);
            set_target(n, Value::str(s));
            break;
        }
        case Node::Macro:
            define_macro(n);
            break;
        case Node::Break:
            throw BreakSignal{};
        case Node::Continue:
            throw ContinueSignal{};
        case Node::CallBlock:
            fail(n.line, "unsupported construct 'call'");
    }
}

void Interp::set_target(const Node& n, Value v) {
    if (!n.attr.empty()) {
        Value* ns = lookup(n.text);
        if (!ns || ns->kind != Value::Ns) fail(n.line, "'" + n.text + "' is not a namespace");
        for (auto& [k, old] : *ns->dict)
            if (k == n.attr) {
                old = std::move(v);
                return;
            }
        ns->dict->emplace_back(n.attr, std::move(v));
        return;
    }
    if (n.text.find(',') == std::string::npos) {
        assign(n.text, std::move(v));
        return;
    }
    fail(n.line, "unsupported construct: tuple assignment in set");
}

void Interp::run_for(const Node& n, std::string& out) {
    Value it = eval(*n.exprs[0]);
    List items;
    if (it.kind == Value::List)
        items = *it.list;
    else if (it.kind == Value::Dict)
        for (const auto& [k, v] : *it.dict) items.push_back(Value::str(k));
    else if (it.kind == Value::Str) {
        check_size(it.s().size(), n.line, kMaxItems);  // a value per character
        for (char c : it.s()) items.push_back(Value::str(std::string(1, c)));
    }
    else if (it.defined() && it.kind != Value::None)
        fail(n.line, std::string("cannot iterate over a ") + it.type_name());
    std::vector<std::string> names;
    for (size_t p = 0, q; p <= n.text.size(); p = q + 1) {
        q = n.text.find(',', p);
        if (q == std::string::npos) q = n.text.size();
        names.push_back(n.text.substr(p, q - p));
    }
    auto bind = [&](const Value& item) {
        if (names.size() == 1) {
            assign(names[0], item);
            return;
        }
        if (item.kind != Value::List || item.list->size() != names.size())
            fail(n.line,
                 "cannot unpack " + std::string(item.type_name()) + " into " + std::to_string(names.size()) + " names");
        for (size_t k = 0; k < names.size(); ++k) assign(names[k], (*item.list)[k]);
    };
    if (n.exprs[1]) {  // {% for x in xs if cond %}: filter first, loop.* counts the kept items
        List kept;
        scopes_.emplace_back();
        for (const Value& item : items) {
            bind(item);
            if (eval(*n.exprs[1]).truthy()) kept.push_back(item);
        }
        scopes_.pop_back();
        items.swap(kept);
    }
    if (items.empty()) {
        if (n.body.size() > 1) exec(*n.body[1], out);
        return;
    }
    scopes_.emplace_back();
    const int64_t len = int64_t(items.size());
    for (int64_t k = 0; k < len; ++k) {
        const Step step(*this, n.line);  // an iteration is a step, even with an empty body
        bind(items[size_t(k)]);
        Dict loop = {{"index", Value::integer(k + 1)},
                     {"index0", Value::integer(k)},
                     {"first", Value::boolean(k == 0)},
                     {"last", Value::boolean(k == len - 1)},
                     {"length", Value::integer(len)},
                     {"revindex", Value::integer(len - k)},
                     {"revindex0", Value::integer(len - k - 1)},
                     {"previtem", k > 0 ? items[size_t(k - 1)] : Value()},
                     {"nextitem", k + 1 < len ? items[size_t(k + 1)] : Value()}};
        loop.emplace_back("cycle", Value::func([k](const Args& a) {
                              return a.pos.empty() ? Value() : a.pos[size_t(k) % a.pos.size()];
                          }));
        assign("loop", Value::new_dict(std::move(loop)));
        try {
            exec(*n.body[0], out);
        } catch (const BreakSignal&) {
            break;
        } catch (const ContinueSignal&) {
            continue;
        }
    }
    scopes_.pop_back();
}

void Interp::define_macro(const Node& n) {
    const Node* node = &n;
    assign(n.text, Value::func([this, node](const Args& a) {
               scopes_.emplace_back();
               for (size_t k = 0; k < node->params.size(); ++k) {
                   const auto& [p, dflt] = node->params[k];
                   const Value* v = a.get(k, p.c_str());
                   assign(p, v ? *v : dflt ? eval(*dflt) : Value());
               }
               std::string s;
               exec(*node->body[0], s);
               scopes_.pop_back();
               return Value::str(s);
           }));
}

Interp::~Interp() {
    for (const auto& w : namespaces_)
        if (const auto d = w.lock()) {
            jinja::Dict attrs;
            attrs.swap(*d);  // freed here, after the swap: a namespace's own attributes may hold the last reference to it
        }
}

std::string Interp::run(const Node& root, const json::Value& context) {
    scopes_.clear();
    scopes_.emplace_back();
    install_globals();
    if (context.is_object())
        for (size_t k = 0; k < context.keys.size(); ++k) assign(context.keys[k], Value::from_json(context.items[k]));
    scopes_.emplace_back();
    std::string out;
    try {
        exec(root, out);
    } catch (const BreakSignal&) {
        fail(0, "'break' outside a loop");
    } catch (const ContinueSignal&) {
        fail(0, "'continue' outside a loop");
    }
    return out;
}

Template::Template(const std::string& source, const std::string& name) : name_(name), root_(parse(source, name)) {}
Template::~Template() = default;

std::string Template::render(const json::Value& context) const {
    Interp in(name_);
    return in.run(*root_, context);
}

}  // namespace imp::jinja
