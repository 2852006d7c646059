// Value conversions: from JSON, Python str()/repr(), truthiness, equality, json.dumps.
#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "imp/error.h"

namespace imp::jinja {

// Lists share their items, so a small template can build a value whose text is far larger than memory (a list
// doubled 20 times holding one 16 MB string): its text stops at kMaxTextBytes with an error instead.
void check_text(size_t n) {
    if (n > kMaxTextBytes)
        throw Error("chat template: a value's text is longer than imp's limit of " + std::to_string(kMaxTextBytes) +
                    " bytes");
}

namespace {
// Lists and dicts whose storage a ListFree / DictFree call is freeing, on this thread: the outermost call frees them
// one after the other, the calls their elements' destructors make only queue theirs.
struct Freeing {
    std::vector<List*> lists;
    std::vector<Dict*> dicts;
    bool active = false;
};
thread_local Freeing freeing;

template <typename T>
void free_iteratively(T* p, std::vector<T*>& queue) noexcept {
    if (freeing.active) {
        try {
            queue.push_back(p);
            return;
        } catch (...) {  // no memory to queue it: free it here (recursion, bounded by what memory allowed)
            delete p;
            return;
        }
    }
    freeing.active = true;
    delete p;
    while (!freeing.lists.empty() || !freeing.dicts.empty()) {
        if (!freeing.lists.empty()) {
            List* l = freeing.lists.back();
            freeing.lists.pop_back();
            delete l;
        } else {
            Dict* d = freeing.dicts.back();
            freeing.dicts.pop_back();
            delete d;
        }
    }
    freeing.active = false;
}

void check_depth(int depth) {
    if (depth > kMaxValueDepth)
        throw Error("a value nests deeper than imp's limit of " + std::to_string(kMaxValueDepth) +
                    " levels (a namespace holding itself?)");
}
}  // namespace

void ListFree::operator()(List* p) const noexcept { free_iteratively(p, freeing.lists); }
void DictFree::operator()(Dict* p) const noexcept { free_iteratively(p, freeing.dicts); }

const Value* Args::get(size_t i, const char* name) const {
    for (const auto& [k, v] : kw)
        if (k == name) return &v;
    return i < pos.size() ? &pos[i] : nullptr;
}

Value Value::from_json(const json::Value& j) {
    switch (j.kind) {
        case json::Value::Kind::Null:
            return none();
        case json::Value::Kind::Bool:
            return boolean(j.b);
        case json::Value::Kind::Int:
            return integer(j.i);
        case json::Value::Kind::UInt:
            return number(double(j.u));
        case json::Value::Kind::Float:
            return number(j.f);
        case json::Value::Kind::String:
            return str(j.s);
        case json::Value::Kind::Array: {
            jinja::List l;
            for (const auto& e : j.items) l.push_back(from_json(e));
            return new_list(std::move(l));
        }
        case json::Value::Kind::Object: {
            jinja::Dict d;
            for (size_t k = 0; k < j.keys.size(); ++k) d.emplace_back(j.keys[k], from_json(j.items[k]));
            return new_dict(std::move(d));
        }
    }
    return Value();
}

bool Value::truthy() const {
    switch (kind) {
        case Undefined:
        case None:
            return false;
        case Bool:
            return b;
        case Int:
            return i != 0;
        case Float:
            return f != 0;
        case Str:
            return !s().empty();
        case List:
            return !list->empty();
        case Dict:
            return !dict->empty();
        default:
            return true;
    }
}

const Value* Value::find(const std::string& key) const {
    if ((kind != Dict && kind != Ns) || !dict) return nullptr;
    for (const auto& [k, v] : *dict)
        if (k == key) return &v;
    return nullptr;
}

const char* Value::type_name() const {
    static const char* const names[] = {"undefined", "NoneType", "bool", "int",       "float",
                                        "str",       "list",     "dict", "Namespace", "function"};
    return names[kind];
}

namespace {

// Python's repr of a float: the shortest digits that read back as the same double, in positional notation when the
// decimal exponent is in [-4, 16) ("10.0", "1500.0", "0.0001") and in exponent notation otherwise ("1e+16", "1e-05").
std::string float_repr(double f) {
    if (std::isnan(f)) return "nan";
    if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
    char b[64];
    const auto r = std::to_chars(b, b + sizeof b, f, std::chars_format::scientific);  // shortest round trip
    const std::string sci(b, r.ptr);                                                  // "-1.5e+03"
    const size_t e = sci.find('e');
    const bool neg = sci[0] == '-';
    std::string digits;
    for (size_t i = neg ? 1 : 0; i < e; ++i)
        if (sci[i] != '.') digits += sci[i];
    const int exp10 = std::stoi(sci.substr(e + 1));
    std::string out = neg ? "-" : "";
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) return out + "0." + std::string(size_t(-exp10 - 1), '0') + digits;
        const size_t point = size_t(exp10) + 1;
        if (digits.size() <= point) return out + digits + std::string(point - digits.size(), '0') + ".0";
        return out + digits.substr(0, point) + "." + digits.substr(point);
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int a = exp10 < 0 ? -exp10 : exp10;
    return out + "e" + (exp10 < 0 ? "-" : "+") + (a < 10 ? "0" : "") + std::to_string(a);
}

std::string str_repr(const std::string& s) {
    const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
    const char q = dq ? '"' : '\'';
    std::string o(1, q);
    for (unsigned char c : s) {
        if (c == '\\')
            o += "\\\\";
        else if (c == q)
            o += '\\', o += char(c);
        else if (c == '\n')
            o += "\\n";
        else if (c == '\t')
            o += "\\t";
        else if (c == '\r')
            o += "\\r";
        else if (c < 0x20 || c == 0x7F) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            o += b;
        } else
            o += char(c);
    }
    return o + q;
}

void dump_str(std::string& o, const std::string& s) {
    o += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                o += "\\\"";
                break;
            case '\\':
                o += "\\\\";
                break;
            case '\n':
                o += "\\n";
                break;
            case '\r':
                o += "\\r";
                break;
            case '\t':
                o += "\\t";
                break;
            case '\b':
                o += "\\b";
                break;
            case '\f':
                o += "\\f";
                break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    char b[8];
                    std::snprintf(b, sizeof b, "\\u%04x", c);
                    o += b;
                } else {
                    o += char(c);
                }
        }
    }
    o += '"';
}

void dumps(std::string& o, const Value& v, int indent, bool sort, int depth) {
    check_depth(depth);
    auto nl = [&](int d) {
        if (indent < 0) return;
        o += '\n';
        check_text(o.size() + size_t(indent) * size_t(d));  // before the spaces are appended
        o.append(size_t(indent) * size_t(d), ' ');
    };
    const char* item_sep = indent < 0 ? ", " : ",";
    switch (v.kind) {
        case Value::Undefined:
        case Value::None:
            o += "null";
            break;
        case Value::Bool:
            o += v.b ? "true" : "false";
            break;
        case Value::Int:
            o += std::to_string(v.i);
            break;
        case Value::Float:
            o += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : float_repr(v.f);
            break;
        case Value::Str:
            dump_str(o, v.s());
            break;
        case Value::List:
            if (v.list->empty()) {
                o += "[]";
                break;
            }
            o += '[';
            for (size_t k = 0; k < v.list->size(); ++k) {
                if (k) o += item_sep;
                nl(depth + 1);
                dumps(o, (*v.list)[k], indent, sort, depth + 1);
                check_text(o.size());
            }
            nl(depth);
            o += ']';
            break;
        case Value::Dict:
        case Value::Ns: {
            if (v.dict->empty()) {
                o += "{}";
                break;
            }
            std::vector<const std::pair<std::string, Value>*> items;
            for (const auto& kv : *v.dict) items.push_back(&kv);
            if (sort)
                std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
            o += '{';
            for (size_t k = 0; k < items.size(); ++k) {
                if (k) o += item_sep;
                nl(depth + 1);
                dump_str(o, items[k]->first);
                o += ": ";
                dumps(o, items[k]->second, indent, sort, depth + 1);
                check_text(o.size());
            }
            nl(depth);
            o += '}';
            break;
        }
        case Value::Callable:
            o += "null";
            break;
    }
}

}  // namespace

std::string Value::str_py() const {
    switch (kind) {
        case Undefined:
            return "";
        case Str:
            return s();
        default:
            return repr_py();
    }
}

namespace {
std::string repr_at(const Value& v, int depth) {
    check_depth(depth);
    const auto& list = v.list;
    const auto& dict = v.dict;
    switch (v.kind) {
        using enum Value::Kind;
        case Undefined:
            return "";
        case None:
            return "None";
        case Bool:
            return v.b ? "True" : "False";
        case Int:
            return std::to_string(v.i);
        case Float:
            return float_repr(v.f);
        case Str:
            return str_repr(v.s());
        case List: {
            std::string o = "[";
            for (size_t k = 0; k < list->size(); ++k) {
                o += (k ? ", " : "") + repr_at((*list)[k], depth + 1);
                check_text(o.size());
            }
            return o + "]";
        }
        case Dict: {
            std::string o = "{";
            for (size_t k = 0; k < dict->size(); ++k) {
                o += (k ? ", " : "") + str_repr((*dict)[k].first) + ": " + repr_at((*dict)[k].second, depth + 1);
                check_text(o.size());
            }
            return o + "}";
        }
        case Ns:
            return "<Namespace>";
        case Callable:
            return "<function>";
    }
    return "";
}

}  // namespace

std::string Value::repr_py() const { return repr_at(*this, 0); }

namespace {
bool equal_at(const Value& a, const Value& b, int depth) {
    check_depth(depth);
    if (a.is_number() && b.is_number()) return a.as_double() == b.as_double();
    if (a.kind != b.kind)
        return (a.kind == Value::Undefined || a.kind == Value::None) &&
               (b.kind == Value::Undefined || b.kind == Value::None) && a.kind == b.kind;
    switch (a.kind) {
        case Value::Str:
            return a.s() == b.s();
        case Value::List:
            if (a.list->size() != b.list->size()) return false;
            for (size_t k = 0; k < a.list->size(); ++k)
                if (!equal_at((*a.list)[k], (*b.list)[k], depth + 1)) return false;
            return true;
        case Value::Dict:
            if (a.dict->size() != b.dict->size()) return false;
            for (const auto& [k, v] : *a.dict) {
                const Value* o = b.find(k);
                if (!o || !equal_at(v, *o, depth + 1)) return false;
            }
            return true;
        case Value::None:
        case Value::Undefined:
            return true;
        default:
            return a.dict == b.dict && a.fn == b.fn;
    }
}
}  // namespace

bool equal(const Value& a, const Value& b) { return equal_at(a, b, 0); }

std::string json_dumps(const Value& v, int indent, bool sort_keys) {
    std::string o;
    dumps(o, v, indent, sort_keys, 0);
    return o;
}

}  // namespace imp::jinja
