// Jinja globals (range, namespace, raise_exception, strftime_now, dict), filters, tests, and the Python str / dict
// methods that chat templates call.
#include <algorithm>
#include <cctype>
#include <ctime>

#include "imp/error.h"
#include "tokenizer/jinja/eval.h"
#include "tokenizer/unicode.h"

namespace imp::jinja {

namespace {

// Python's str.isspace() for one code point: Unicode White_Space and the separators \x1c-\x1f.
bool py_space(uint32_t cp) { return (unicode::flags(cp) & unicode::kWhitespace) || (cp >= 0x1C && cp <= 0x1F); }

// Byte length of the whitespace code point at s[p], 0 when s[p] does not start one.
size_t space_at(const std::string& s, size_t p) {
    int len = 1;
    return py_space(unicode::decode_utf8(s, p, &len)) ? size_t(len) : 0;
}

// str.strip / lstrip / rstrip: whitespace (py_space) or the code points of `chars`, whole code points only.
std::string strip(const std::string& s, const std::string* chars, bool left, bool right) {
    std::vector<uint32_t> set;
    if (chars)
        for (size_t i = 0; i < chars->size();) {
            int len = 1;
            set.push_back(unicode::decode_utf8(*chars, i, &len));
            i += size_t(len);
        }
    auto drop = [&](uint32_t cp) { return chars ? std::find(set.begin(), set.end(), cp) != set.end() : py_space(cp); };
    size_t b = 0, e = s.size();
    while (left && b < e) {
        int len = 1;
        if (!drop(unicode::decode_utf8(s, b, &len))) break;
        b += size_t(len);
    }
    while (right && e > b) {  // back over one code point (a stray byte counts as one, U+FFFD)
        size_t k = e - 1;
        while (k > b && e - k < 4 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        int len = 1;
        uint32_t cp = unicode::decode_utf8(s, k, &len);
        if (k + size_t(len) != e) k = e - 1, cp = unicode::kReplacement;
        if (!drop(cp)) break;
        e = k;
    }
    return s.substr(b, e - b);
}

std::string upper(std::string s) {
    for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

int64_t length(const Value& v) {
    if (v.kind == Value::Str) {
        int64_t n = 0;
        for (unsigned char c : v.s()) n += (c & 0xC0) != 0x80;  // code points
        return n;
    }
    if (v.kind == Value::List) return int64_t(v.list->size());
    if (v.kind == Value::Dict) return int64_t(v.dict->size());
    return 0;
}

std::string replace_all(const std::string& s, const std::string& a, const std::string& b, int64_t count) {
    if (a.empty()) return s;
    std::string o;
    size_t p = 0;
    for (size_t q; count != 0 && (q = s.find(a, p)) != std::string::npos; p = q + a.size(), --count) {
        check_text(o.size() + (q - p) + b.size());  // 16 MB of 'a' with each 'a' made 16 MB: 2^48 bytes
        o.append(s, p, q - p) += b;
    }
    check_text(o.size() + (s.size() - p));
    return o.append(s, p);
}

Value items_of(const Value& d) {
    List l;
    if (d.dict)
        for (const auto& [k, v] : *d.dict) l.push_back(Value::new_list({Value::str(k), v}));
    return Value::new_list(std::move(l));
}

}  // namespace

void Interp::install_globals() {
    assign("range", Value::func([this](const Args& a) {
               int64_t b = 0, e = 0, st = 1;
               if (a.pos.size() == 1)
                   e = a.pos[0].i;
               else if (a.pos.size() >= 2)
                   b = a.pos[0].i, e = a.pos[1].i;
               if (a.pos.size() == 3) st = a.pos[2].i;
               if (st == 0) fail(cur_line_, "range() step must not be zero");
               const __int128 n = st > 0 ? (__int128(e) - b + st - 1) / st : (__int128(b) - e - st - 1) / -__int128(st);
               if (n > __int128(kMaxItems)) check_size(n > __int128(SIZE_MAX) ? SIZE_MAX : size_t(n), cur_line_, kMaxItems);
               if (n > 0) spend(uint64_t(n), cur_line_);
               List l;
               for (__int128 k = b; st > 0 ? k < e : k > e; k += st) l.push_back(Value::integer(int64_t(k)));
               return Value::new_list(std::move(l));
           }));
    assign("namespace", Value::func([this](const Args& a) {
               Value v = Value::new_dict();
               v.kind = Value::Ns;
               namespaces_.push_back(v.dict);
               for (const auto& [k, x] : a.kw) v.dict->emplace_back(k, x);
               return v;
           }));
    assign("dict", Value::func([](const Args& a) {
               Value v = Value::new_dict();
               for (const auto& [k, x] : a.kw) v.dict->emplace_back(k, x);
               return v;
           }));
    assign("raise_exception", Value::func([this](const Args& a) -> Value {
               fail(cur_line_, "raise_exception: " + (a.pos.empty() ? std::string() : a.pos[0].str_py()));
           }));
    assign("strftime_now", Value::func([](const Args& a) {
               char b[128] = "";
               const std::time_t t = std::time(nullptr);
               std::tm tm{};
               localtime_r(&t, &tm);
               if (!a.pos.empty()) std::strftime(b, sizeof b, a.pos[0].s().c_str(), &tm);
               return Value::str(b);
           }));
}

Value Interp::filter(const std::string& name, Args& a, int line) {
    const Value& v = a.pos[0];
    auto arg = [&](size_t i, const char* k) { return a.get(i, k); };
    if (name == "trim") {
        const Value* chars = arg(1, "chars");
        return Value::str(strip(v.str_py(), chars && chars->kind == Value::Str ? &chars->s() : nullptr, true, true));
    }
    if (name == "tojson") {
        const Value* ind = arg(1, "indent");
        const Value* sk = arg(2, "sort_keys");
        int indent = -1;  // none: compact; a negative indent is Python's too: newlines, no spaces
        if (ind && ind->kind == Value::Int) {
            if (ind->i > int64_t(kMaxSize)) check_size(size_t(ind->i), line);
            indent = int(std::max<int64_t>(ind->i, 0));
        }
        return Value::str(json_dumps(v, indent, sk && sk->truthy()));
    }
    if (name == "length" || name == "count") return Value::integer(length(v));
    if (name == "upper") return Value::str(upper(v.str_py()));
    if (name == "lower") return Value::str(lower(v.str_py()));
    if (name == "capitalize") {
        std::string s = lower(v.str_py());
        if (!s.empty()) s[0] = char(std::toupper(static_cast<unsigned char>(s[0])));
        return Value::str(s);
    }
    if (name == "string") return Value::str(v.str_py());
    if (name == "safe" || name == "e" || name == "escape") {
        if (name == "safe") return v;
        fail(line, "unsupported filter 'escape'");
    }
    if (name == "default" || name == "d") {
        const Value* dflt = arg(1, "default_value");
        const Value* boolean = arg(2, "boolean");
        const bool use = !v.defined() || (boolean && boolean->truthy() && !v.truthy());
        return use ? (dflt ? *dflt : Value::str("")) : v;
    }
    if (name == "first" || name == "last") {
        if (v.kind == Value::List) {
            if (v.list->empty()) return Value();
            return name == "first" ? v.list->front() : v.list->back();
        }
        if (v.kind == Value::Str && !v.s().empty())
            return Value::str(std::string(1, name == "first" ? v.s().front() : v.s().back()));
        return Value();
    }
    if (name == "join") {
        const Value* sep = arg(1, "d");
        const Value* attr = arg(2, "attribute");
        std::string o;
        const std::string d = sep ? sep->str_py() : "";
        if (v.kind == Value::List)
            for (size_t k = 0; k < v.list->size(); ++k) {  // bounded as it grows: 1000 items x a 10 MB separator
                if (k) {
                    check_size(o.size() + d.size(), line);
                    o += d;
                }
                const Value& x = (*v.list)[k];
                o += attr ? get_attr(x, attr->str_py(), line).str_py() : x.str_py();
                check_size(o.size(), line);
            }
        return Value::str(o);
    }
    if (name == "list") {
        if (v.kind == Value::List) return v;
        List l;
        if (v.kind == Value::Str) {
            check_size(v.s().size(), line, kMaxItems);  // a value per character
            for (char c : v.s()) l.push_back(Value::str(std::string(1, c)));
        }
        if (v.kind == Value::Dict)
            for (const auto& kv : *v.dict) l.push_back(Value::str(kv.first));
        return Value::new_list(std::move(l));
    }
    if (name == "items") return items_of(v);
    if (name == "reverse") {
        if (v.kind == Value::Str) return Value::str(std::string(v.s().rbegin(), v.s().rend()));
        List l = v.kind == Value::List ? *v.list : List{};
        std::reverse(l.begin(), l.end());
        return Value::new_list(std::move(l));
    }
    if (name == "replace") {
        const Value* c = arg(3, "count");
        return Value::str(replace_all(v.str_py(), a.pos.size() > 1 ? a.pos[1].str_py() : "",
                                      a.pos.size() > 2 ? a.pos[2].str_py() : "", c ? c->i : -1));
    }
    if (name == "int") {
        if (v.kind == Value::Int) return v;
        if (v.kind == Value::Float) {  // |int of a float beyond int64 (or NaN) would be undefined behaviour
            if (!(v.f > -9.2e18 && v.f < 9.2e18)) fail(line, "int() of " + v.str_py() + " is out of range");
            return Value::integer(int64_t(v.f));
        }
        if (v.kind == Value::Bool) return Value::integer(v.b);
        try {
            return Value::integer(std::stoll(v.str_py()));
        } catch (const std::exception&) {
            return Value::integer(0);
        }
    }
    if (name == "float") return Value::number(v.is_number() ? v.as_double() : std::atof(v.str_py().c_str()));
    if (name == "abs") {
        if (v.kind == Value::Int && v.i == INT64_MIN) fail(line, "integer overflow in abs");
        return v.kind == Value::Int ? Value::integer(v.i < 0 ? -v.i : v.i) : Value::number(std::abs(v.as_double()));
    }
    if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
        const bool attr = name.size() > 6;
        const bool keep = name[0] == 's';
        List l;
        if (v.kind == Value::List)
            for (const Value& x : *v.list) {
                Value subject = attr ? get_attr(x, a.pos.size() > 1 ? a.pos[1].str_py() : "", line) : x;
                bool r;
                const size_t tpos = attr ? 2 : 1;
                if (a.pos.size() > tpos) {
                    Args ta;
                    ta.pos.push_back(subject);
                    for (size_t k = tpos + 1; k < a.pos.size(); ++k) ta.pos.push_back(a.pos[k]);
                    r = test(a.pos[tpos].str_py(), ta, line);
                } else {
                    r = subject.truthy();
                }
                if (r == keep) l.push_back(x);
            }
        return Value::new_list(std::move(l));
    }
    if (name == "map") {
        List l;
        const Value* attr = arg(99, "attribute");
        if (v.kind == Value::List)
            for (const Value& x : *v.list) {
                if (attr) {
                    l.push_back(get_attr(x, attr->str_py(), line));
                } else if (a.pos.size() > 1) {
                    Args fa;
                    fa.pos.push_back(x);
                    for (size_t k = 2; k < a.pos.size(); ++k) fa.pos.push_back(a.pos[k]);
                    l.push_back(filter(a.pos[1].str_py(), fa, line));
                }
            }
        return Value::new_list(std::move(l));
    }
    if (name == "unique") {
        List l;
        if (v.kind == Value::List)
            for (const Value& x : *v.list)
                if (std::none_of(l.begin(), l.end(), [&](const Value& y) { return equal(x, y); })) l.push_back(x);
        return Value::new_list(std::move(l));
    }
    if (name == "indent") {
        const Value* w = arg(1, "width");
        const Value* first = arg(2, "first");
        const int64_t width = w && w->kind == Value::Int ? std::max<int64_t>(w->i, 0) : 4;  // Python: ' ' * -1 == ''
        check_size(size_t(width), line);
        const std::string pad(size_t(width), ' ');
        std::string s = v.str_py(), o;
        for (size_t k = 0; k < s.size(); ++k) {
            o += s[k];
            if (s[k] == '\n' && k + 1 < s.size() && s[k + 1] != '\n') {
                o += pad;
                check_size(o.size(), line);
            }
        }
        return Value::str((first && first->truthy() ? pad : "") + o);
    }
    if (name == "title") {
        std::string s = v.str_py();
        bool start = true;
        for (char& c : s) {
            c = start ? char(std::toupper(static_cast<unsigned char>(c)))
                      : char(std::tolower(static_cast<unsigned char>(c)));
            start = !std::isalpha(static_cast<unsigned char>(c));
        }
        return Value::str(s);
    }
    fail(line, "unsupported filter '" + name + "'");
}

bool Interp::test(const std::string& name, const Args& a, int line) {
    const Value& v = a.pos[0];
    if (name == "defined") return v.defined();
    if (name == "undefined") return !v.defined();
    if (name == "none") return v.kind == Value::None;
    if (name == "string") return v.kind == Value::Str;
    if (name == "number") return v.kind == Value::Int || v.kind == Value::Float;
    if (name == "integer") return v.kind == Value::Int;
    if (name == "float") return v.kind == Value::Float;
    if (name == "boolean") return v.kind == Value::Bool;
    if (name == "true") return v.kind == Value::Bool && v.b;
    if (name == "false") return v.kind == Value::Bool && !v.b;
    if (name == "mapping") return v.kind == Value::Dict;
    if (name == "sequence" || name == "iterable")
        return v.kind == Value::List || v.kind == Value::Str || v.kind == Value::Dict;
    if (name == "callable") return v.kind == Value::Callable;
    if (name == "odd" || name == "even") return (v.i % 2 != 0) == (name == "odd");
    if (name == "divisibleby")  // x % -1 is 0 (INT64_MIN % -1 overflows)
        return a.pos.size() > 1 && a.pos[1].i != 0 && (a.pos[1].i == -1 || v.i % a.pos[1].i == 0);
    if (name == "eq" || name == "equalto" || name == "==") return a.pos.size() > 1 && equal(v, a.pos[1]);
    if (name == "ne" || name == "!=") return a.pos.size() > 1 && !equal(v, a.pos[1]);
    if (name == "in") {
        if (a.pos.size() < 2) return false;
        const Value& c = a.pos[1];
        if (c.kind == Value::Str) return v.kind == Value::Str && c.s().find(v.s()) != std::string::npos;
        if (c.kind == Value::List)
            return std::any_of(c.list->begin(), c.list->end(), [&](const Value& x) { return equal(x, v); });
        if (c.kind == Value::Dict) return v.kind == Value::Str && c.find(v.s());
        return false;
    }
    if (name == "lower") return v.kind == Value::Str && lower(v.s()) == v.s();
    if (name == "upper") return v.kind == Value::Str && upper(v.s()) == v.s();
    fail(line, "unsupported test '" + name + "'");
}

Value Interp::method(const Value& obj, const std::string& name, int line) {
    auto m = [](auto f) { return Value::func(f); };
    if (obj.kind == Value::Str) {
        // the text by its shared pointer: a method call copies no bytes
        const auto sp = obj.text ? obj.text : std::make_shared<const std::string>();
        if (name == "strip" || name == "lstrip" || name == "rstrip")
            return m([sp, name](const Args& a) {
                const std::string& s = *sp;
                const Value* c = a.get(0, "chars");
                return Value::str(
                    strip(s, c && c->kind == Value::Str ? &c->s() : nullptr, name != "rstrip", name != "lstrip"));
            });
        if (name == "upper") return m([sp](const Args&) { return Value::str(upper(*sp)); });
        if (name == "lower") return m([sp](const Args&) { return Value::str(lower(*sp)); });
        if (name == "startswith" || name == "endswith")
            return m([sp, name](const Args& a) {
                const std::string& s = *sp;
                std::vector<std::string> opts;
                if (!a.pos.empty() && a.pos[0].kind == Value::List)
                    for (const Value& x : *a.pos[0].list) opts.push_back(x.s());
                else if (!a.pos.empty())
                    opts.push_back(a.pos[0].s());
                for (const std::string& p : opts)
                    if (s.size() >= p.size() &&
                        (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                              : s.compare(s.size() - p.size(), p.size(), p) == 0))
                        return Value::boolean(true);
                return Value::boolean(false);
            });
        if (name == "split" || name == "rsplit")
            return m([this, sp, name, line](const Args& a) {
                const std::string& s = *sp;
                const Value* sep = a.get(0, "sep");
                const Value* mx = a.get(1, "maxsplit");
                int64_t maxsplit = mx && mx->kind == Value::Int ? mx->i : -1;
                List l;
                if (!sep || sep->kind == Value::None) {  // runs of whitespace
                    size_t p = 0;
                    while (p < s.size()) {
                        for (size_t n; p < s.size() && (n = space_at(s, p)) > 0;) p += n;
                        if (p >= s.size()) break;
                        size_t q = p;
                        if (maxsplit == 0)
                            q = s.size();
                        else
                            while (q < s.size() && space_at(s, q) == 0) ++q;  // (a continuation byte never starts one)
                        l.push_back(Value::str(s.substr(p, q - p)));
                        check_size(l.size(), line, kMaxItems);
                        if (maxsplit > 0) --maxsplit;
                        p = q;
                    }
                    return Value::new_list(std::move(l));
                }
                const std::string d = sep->s();
                if (name == "rsplit" && maxsplit >= 0) {
                    size_t end = s.size();
                    std::vector<std::string> parts;
                    while (maxsplit-- > 0) {
                        const size_t q = end >= d.size() ? s.rfind(d, end - d.size()) : std::string::npos;
                        if (q == std::string::npos) break;
                        parts.push_back(s.substr(q + d.size(), end - q - d.size()));
                        check_size(parts.size(), line, kMaxItems);
                        end = q;
                    }
                    parts.push_back(s.substr(0, end));
                    for (size_t k = parts.size(); k-- > 0;) l.push_back(Value::str(parts[k]));
                    return Value::new_list(std::move(l));
                }
                size_t p = 0;
                for (size_t q; maxsplit != 0 && !d.empty() && (q = s.find(d, p)) != std::string::npos;
                     p = q + d.size()) {
                    l.push_back(Value::str(s.substr(p, q - p)));
                    check_size(l.size(), line, kMaxItems);
                    if (maxsplit > 0) --maxsplit;
                }
                l.push_back(Value::str(s.substr(p)));
                return Value::new_list(std::move(l));
            });
        if (name == "replace")
            return m([sp](const Args& a) {
                const std::string& s = *sp;
                const Value* c = a.get(2, "count");
                return Value::str(replace_all(s, a.pos.size() > 0 ? a.pos[0].s() : "", a.pos.size() > 1 ? a.pos[1].s() : "",
                                              c && c->kind == Value::Int ? c->i : -1));
            });
        if (name == "find" || name == "rfind")
            return m([sp, name](const Args& a) {
                const std::string& s = *sp;
                const std::string sub = a.pos.empty() ? "" : a.pos[0].s();
                const size_t p = name == "find" ? s.find(sub) : s.rfind(sub);
                return Value::integer(p == std::string::npos ? -1 : int64_t(p));
            });
        if (name == "count")
            return m([sp](const Args& a) {
                const std::string& s = *sp;
                const std::string sub = a.pos.empty() ? "" : a.pos[0].s();
                int64_t n = 0;
                for (size_t p = 0; !sub.empty() && (p = s.find(sub, p)) != std::string::npos; p += sub.size()) ++n;
                return Value::integer(n);
            });
        if (name == "title" || name == "capitalize")
            return m([this, sp, name, line](const Args&) {
                const std::string& s = *sp;
                Args fa;
                fa.pos.push_back(Value::str(s));
                return filter(name, fa, line);
            });
        if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum")
            return m([sp, name](const Args&) {
                const std::string& s = *sp;
                if (s.empty()) return Value::boolean(false);
                for (unsigned char c : s) {
                    const bool ok = name == "isdigit"   ? std::isdigit(c)
                                    : name == "isspace" ? std::isspace(c)
                                    : name == "isalpha" ? std::isalpha(c)
                                                        : std::isalnum(c);
                    if (!ok) return Value::boolean(false);
                }
                return Value::boolean(true);
            });
    }
    if (obj.kind == Value::Dict) {
        const Value d = obj;
        if (name == "items") return m([d](const Args&) { return items_of(d); });
        if (name == "keys")
            return m([d](const Args&) {
                List l;
                for (const auto& kv : *d.dict) l.push_back(Value::str(kv.first));
                return Value::new_list(std::move(l));
            });
        if (name == "values")
            return m([d](const Args&) {
                List l;
                for (const auto& kv : *d.dict) l.push_back(kv.second);
                return Value::new_list(std::move(l));
            });
        if (name == "get")
            return m([d](const Args& a) {
                const Value* v = a.pos.empty() ? nullptr : d.find(a.pos[0].str_py());
                return v ? *v : a.pos.size() > 1 ? a.pos[1] : Value::none();
            });
        return Value();
    }
    if (obj.kind == Value::List && (name == "append" || name == "pop" || name == "insert" || name == "extend"))
        fail(line,
             "unsupported construct: list." + name + "() (templates are rendered immutably, as transformers does)");
    if (obj.kind == Value::Str) fail(line, "unsupported construct: str." + name + "()");
    return Value();
}

}  // namespace imp::jinja
