// Jinja lexer and parser: template text -> Node tree. Whitespace control as transformers configures Jinja
// (trim_blocks, lstrip_blocks) plus the {%- -%} {{- -}} markers.
#include "tokenizer/jinja/parse.h"

#include <cctype>

#include "imp/error.h"

namespace imp::jinja {

namespace {

struct Tok {
    enum Kind { Name, Str, Int, Float, Op, End } kind;
    std::string s;
    int line;
};

// One tag or text chunk of the template.
struct Chunk {
    enum Kind { Text, Var, Block } kind;
    std::string body;
    int line;
};

class Parser {
public:
    Parser(const std::string& src, const std::string& name) : src_(src), name_(name) {}

    NodeP parse() {
        split();
        size_t pos = 0;
        NodeP root = body(pos, {});
        if (pos < chunks_.size()) fail(chunks_[pos].line, "unexpected '" + first_word(chunks_[pos].body) + "'");
        return root;
    }

private:
    [[noreturn]] void fail(int line, const std::string& what) const {
        throw Error(name_ + ":" + std::to_string(line) + ": " + what);
    }
    static std::string first_word(const std::string& s) {
        size_t b = 0;
        while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
        size_t e = b;
        while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
        return s.substr(b, e - b);
    }

    // --- template -> chunks ---
    void split() {
        size_t i = 0;
        int line = 1;
        std::string text;
        int text_line = 1;
        bool trim_next = false;  // '-' on the previous tag's end, or trim_blocks newline
        bool trim_nl = false;
        auto line_at = [&](size_t a, size_t b) {
            for (size_t k = a; k < b; ++k) line += src_[k] == '\n';
        };
        while (i < src_.size()) {
            size_t open = src_.find('{', i);
            while (open != std::string::npos && open + 1 < src_.size() && src_[open + 1] != '{' &&
                   src_[open + 1] != '%' && src_[open + 1] != '#')
                open = src_.find('{', open + 1);
            if (open == std::string::npos || open + 1 >= src_.size()) open = src_.size();
            std::string t = src_.substr(i, open - i);
            if (trim_next) {
                size_t k = 0;
                while (k < t.size() && std::isspace(static_cast<unsigned char>(t[k]))) ++k;
                t.erase(0, k);
            } else if (trim_nl && !t.empty() && t[0] == '\n') {
                t.erase(0, 1);
            } else if (trim_nl && t.size() > 1 && t[0] == '\r' && t[1] == '\n') {
                t.erase(0, 2);
            }
            line_at(i, open);
            if (open >= src_.size()) {
                push_text(t, text_line);
                break;
            }
            const char kind = src_[open + 1];
            const bool minus = open + 2 < src_.size() && src_[open + 2] == '-';
            const bool plus = open + 2 < src_.size() && src_[open + 2] == '+';
            if (minus) {
                size_t e = t.size();
                while (e > 0 && std::isspace(static_cast<unsigned char>(t[e - 1]))) --e;
                t.erase(e);
            } else if (kind != '{' && !plus) {  // lstrip_blocks: blanks from the line start (in the source) to a tag
                size_t b = open;
                while (b > 0 && (src_[b - 1] == ' ' || src_[b - 1] == '\t')) --b;
                if (b == 0 || src_[b - 1] == '\n') {
                    size_t e = t.size();
                    while (e > 0 && (t[e - 1] == ' ' || t[e - 1] == '\t')) --e;
                    t.erase(e);
                }
            }
            push_text(t, text_line);
            const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
            const size_t start = open + 2 + (minus || plus ? 1 : 0);
            size_t end = kind == '#' ? src_.find(close, start) : find_close(start, close);
            if (end == std::string::npos) fail(line, std::string("unclosed '{") + kind + "'");
            const bool rminus = end > start && src_[end - 1] == '-';
            const std::string inner = src_.substr(start, end - start - (rminus ? 1 : 0));
            const int tag_line = line;
            line_at(open, end + 2);
            if (kind == '{') chunks_.push_back({Chunk::Var, inner, tag_line});
            else if (kind == '%') chunks_.push_back({Chunk::Block, inner, tag_line});
            trim_next = rminus;
            trim_nl = kind != '{';  // trim_blocks
            i = end + 2;
            text_line = line;
            // {% raw %}: the text up to {% endraw %} is literal.
            if (kind == '%' && first_word(inner) == "raw") {
                chunks_.pop_back();
                const size_t r = src_.find("endraw", i);
                if (r == std::string::npos) fail(tag_line, "unclosed 'raw'");
                size_t ropen = src_.rfind("{%", r);
                std::string raw = src_.substr(i, ropen - i);
                if (ropen + 2 < src_.size() && src_[ropen + 2] == '-') {
                    size_t e = raw.size();
                    while (e > 0 && std::isspace(static_cast<unsigned char>(raw[e - 1]))) --e;
                    raw.erase(e);
                }
                push_text(raw, text_line);
                const size_t rend = src_.find("%}", r);
                if (rend == std::string::npos) fail(tag_line, "unclosed 'endraw'");
                trim_next = src_[rend - 1] == '-';
                line_at(i, rend + 2);
                i = rend + 2;
                text_line = line;
            }
        }
    }
    void push_text(const std::string& t, int line) {
        if (t.empty()) return;
        chunks_.push_back({Chunk::Text, t, line});
    }
    // The end of a tag, skipping string literals.
    size_t find_close(size_t from, const std::string& close) const {
        for (size_t k = from; k + 1 < src_.size(); ++k) {
            const char c = src_[k];
            if (c == '\'' || c == '"') {
                for (++k; k < src_.size() && src_[k] != c; ++k)
                    if (src_[k] == '\\') ++k;
                continue;
            }
            if (src_.compare(k, 2, close) == 0) return k;
        }
        return std::string::npos;
    }

    // --- statements ---
    NodeP body(size_t& pos, const std::vector<std::string>& stop) {
        auto seq = std::make_shared<Node>();
        seq->kind = Node::Seq;
        while (pos < chunks_.size()) {
            const Chunk& c = chunks_[pos];
            if (c.kind == Chunk::Text) {
                auto n = std::make_shared<Node>();
                n->kind = Node::Text, n->text = c.body, n->line = c.line;
                seq->body.push_back(n);
                ++pos;
                continue;
            }
            lex(c.body, c.line);
            if (c.kind == Chunk::Var) {
                auto n = std::make_shared<Node>();
                n->kind = Node::Output, n->line = c.line;
                n->exprs.push_back(expr());
                expect_end();
                seq->body.push_back(n);
                ++pos;
                continue;
            }
            const std::string kw = peek().kind == Tok::Name ? peek().s : "";
            for (const std::string& s : stop)
                if (kw == s) return seq;
            ++pos;
            seq->body.push_back(statement(kw, c.line, pos));
        }
        if (!stop.empty()) fail(chunks_.empty() ? 1 : chunks_.back().line, "missing '{% " + stop.back() + " %}'");
        return seq;
    }

    NodeP statement(const std::string& kw, int line, size_t& pos) {
        auto n = std::make_shared<Node>();
        n->line = line;
        next();
        if (kw == "if") {
            n->kind = Node::If;
            n->exprs.push_back(expr());
            expect_end();
            for (;;) {
                n->body.push_back(body(pos, {"elif", "else", "endif"}));
                lex(chunks_[pos].body, chunks_[pos].line);
                const std::string k = next().s;
                ++pos;
                if (k == "elif") {
                    n->exprs.push_back(expr());
                    expect_end();
                } else if (k == "else") {
                    expect_end();
                    n->body.push_back(body(pos, {"endif"}));
                    ++pos;
                    break;
                } else {
                    expect_end();
                    break;
                }
            }
        } else if (kw == "for") {
            n->kind = Node::For;
            std::string names = name_tok();
            while (accept(",")) names += "," + name_tok();
            if (next().s != "in") fail(line, "expected 'in' in for");
            n->exprs.push_back(or_expr(true));
            if (accept("if")) n->exprs.push_back(or_expr(true));
            else n->exprs.push_back(nullptr);
            if (peek().kind == Tok::Name && peek().s == "recursive") fail(line, "unsupported construct 'recursive' loop");
            n->text = names;
            expect_end();
            n->body.push_back(body(pos, {"else", "endfor"}));
            lex(chunks_[pos].body, chunks_[pos].line);
            const std::string k = next().s;
            ++pos;
            if (k == "else") {
                n->body.push_back(body(pos, {"endfor"}));
                ++pos;
            }
        } else if (kw == "set") {
            std::string target = name_tok();
            if (accept(".")) n->attr = name_tok();
            n->text = target;
            if (accept("=")) {
                n->kind = Node::Set;
                n->exprs.push_back(tuple_or_expr());
                expect_end();
            } else {
                n->kind = Node::SetBlock;
                expect_end();
                n->body.push_back(body(pos, {"endset"}));
                ++pos;
            }
        } else if (kw == "macro") {
            n->kind = Node::Macro;
            n->text = name_tok();
            expect("(");
            while (!accept(")")) {
                std::string p = name_tok();
                ExprP d;
                if (accept("=")) d = expr();
                n->params.emplace_back(p, d);
                if (!accept(",")) {
                    expect(")");
                    break;
                }
            }
            expect_end();
            n->body.push_back(body(pos, {"endmacro"}));
            ++pos;
        } else if (kw == "break" || kw == "continue") {
            n->kind = kw == "break" ? Node::Break : Node::Continue;
            expect_end();
        } else if (kw == "generation") {  // transformers' assistant-mask marker: renders its body
            expect_end();
            n = body(pos, {"endgeneration"});
            ++pos;
        } else if (kw == "call") {
            fail(line, "unsupported construct 'call' block");
        } else {
            fail(line, "unsupported construct '" + (kw.empty() ? std::string("{% %}") : kw) + "'");
        }
        return n;
    }

    // --- expression lexer ---
    void lex(const std::string& s, int line) {
        toks_.clear();
        tp_ = 0;
        line_ = line;
        for (size_t i = 0; i < s.size();) {
            const char c = s[i];
            if (c == '\n') ++line;
            if (std::isspace(static_cast<unsigned char>(c))) {
                ++i;
                continue;
            }
            if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
                size_t e = i;
                while (e < s.size() && (std::isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
                toks_.push_back({Tok::Name, s.substr(i, e - i), line});
                i = e;
            } else if (std::isdigit(static_cast<unsigned char>(c))) {
                size_t e = i;
                bool flt = false;
                while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
                if (e + 1 < s.size() && s[e] == '.' && std::isdigit(static_cast<unsigned char>(s[e + 1]))) {
                    flt = true;
                    ++e;
                    while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
                }
                toks_.push_back({flt ? Tok::Float : Tok::Int, s.substr(i, e - i), line});
                i = e;
            } else if (c == '\'' || c == '"') {
                std::string v;
                size_t k = i + 1;
                for (; k < s.size() && s[k] != c; ++k) {
                    if (s[k] == '\\' && k + 1 < s.size()) {
                        const char e = s[++k];
                        v += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                    } else {
                        v += s[k];
                    }
                }
                if (k >= s.size()) fail(line, "unterminated string literal");
                toks_.push_back({Tok::Str, v, line});
                i = k + 1;
            } else {
                static const char* const ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                                  "<",  ">",  "(",  ")",  "[",  "]",  "{", "}", ",", ".", ":", "|", "="};
                bool ok = false;
                for (const char* op : ops)
                    if (s.compare(i, std::char_traits<char>::length(op), op) == 0) {
                        toks_.push_back({Tok::Op, op, line});
                        i += std::char_traits<char>::length(op);
                        ok = true;
                        break;
                    }
                if (!ok) fail(line, std::string("unexpected character '") + c + "'");
            }
        }
        toks_.push_back({Tok::End, "", line});
    }
    const Tok& peek(size_t k = 0) const { return toks_[std::min(tp_ + k, toks_.size() - 1)]; }
    Tok next() {
        Tok t = peek();
        if (tp_ < toks_.size() - 1) ++tp_;
        return t;
    }
    bool accept(const std::string& s) {
        if ((peek().kind == Tok::Op || peek().kind == Tok::Name) && peek().s == s) {
            ++tp_;
            return true;
        }
        return false;
    }
    void expect(const std::string& s) {
        if (!accept(s)) fail(peek().line, "expected '" + s + "', found '" + peek().s + "'");
    }
    void expect_end() {
        if (peek().kind != Tok::End) fail(peek().line, "unexpected '" + peek().s + "'");
    }
    std::string name_tok() {
        if (peek().kind != Tok::Name) fail(peek().line, "expected a name, found '" + peek().s + "'");
        return next().s;
    }
    ExprP node(Expr::Kind k, std::string name = "") {
        auto e = std::make_shared<Expr>();
        e->kind = k, e->name = std::move(name), e->line = peek().line;
        return e;
    }

    // --- expressions (Jinja2 precedence) ---
    ExprP tuple_or_expr() {
        ExprP e = expr();
        if (peek().s != "," || peek().kind != Tok::Op) return e;
        auto t = node(Expr::MakeTuple);
        t->args.push_back(e);
        while (accept(",")) t->args.push_back(expr());
        return t;
    }
    ExprP expr() {
        ExprP e = or_expr(false);
        if (accept("if")) {
            auto c = node(Expr::Cond);
            c->args.push_back(or_expr(false));
            c->args.push_back(e);
            c->args.push_back(accept("else") ? expr() : nullptr);
            return c;
        }
        return e;
    }
    ExprP or_expr(bool no_cond) {
        ExprP l = and_expr();
        while (accept("or")) l = bin("or", l, and_expr());
        (void)no_cond;
        return l;
    }
    ExprP and_expr() {
        ExprP l = not_expr();
        while (accept("and")) l = bin("and", l, not_expr());
        return l;
    }
    ExprP not_expr() {
        if (peek().kind == Tok::Name && peek().s == "not") {
            next();
            auto u = node(Expr::Unary, "not");
            u->args.push_back(not_expr());
            return u;
        }
        return compare();
    }
    ExprP compare() {
        ExprP l = math1();
        for (;;) {
            const Tok& t = peek();
            if (t.kind == Tok::Op && (t.s == "==" || t.s == "!=" || t.s == "<" || t.s == ">" || t.s == "<=" || t.s == ">=")) {
                const std::string op = next().s;
                l = bin(op, l, math1());
            } else if (t.kind == Tok::Name && t.s == "in") {
                next();
                l = bin("in", l, math1());
            } else if (t.kind == Tok::Name && t.s == "not" && peek(1).s == "in") {
                next(), next();
                l = bin("not in", l, math1());
            } else {
                return l;
            }
        }
    }
    ExprP math1() {
        ExprP l = concat();
        while (peek().kind == Tok::Op && (peek().s == "+" || peek().s == "-")) {
            const std::string op = next().s;
            l = bin(op, l, concat());
        }
        return l;
    }
    ExprP concat() {
        ExprP l = math2();
        while (accept("~")) l = bin("~", l, math2());
        return l;
    }
    ExprP math2() {
        ExprP l = power();
        while (peek().kind == Tok::Op && (peek().s == "*" || peek().s == "/" || peek().s == "//" || peek().s == "%")) {
            const std::string op = next().s;
            l = bin(op, l, power());
        }
        return l;
    }
    ExprP power() {
        ExprP l = unary();
        while (accept("**")) l = bin("**", l, unary());
        return l;
    }
    ExprP unary() {
        if (peek().kind == Tok::Op && (peek().s == "-" || peek().s == "+")) {
            auto u = node(Expr::Unary, next().s);
            u->args.push_back(unary());
            return filters(u);
        }
        return filters(postfix(primary()));
    }
    ExprP bin(const std::string& op, ExprP l, ExprP r) {
        auto b = node(Expr::Binary, op);
        b->args = {l, r};
        return b;
    }
    void call_args(ExprP c) {
        while (!accept(")")) {
            if (peek().kind == Tok::Name && peek(1).kind == Tok::Op && peek(1).s == "=") {
                std::string k = next().s;
                next();
                c->kwargs.emplace_back(k, expr());
            } else {
                c->args.push_back(expr());
            }
            if (!accept(",")) {
                expect(")");
                break;
            }
        }
    }
    ExprP primary() {
        const Tok t = next();
        if (t.kind == Tok::Str) {
            auto e = node(Expr::Lit);
            std::string s = t.s;
            while (peek().kind == Tok::Str) s += next().s;  // adjacent literals concatenate
            e->lit = Value::str(s);
            return e;
        }
        if (t.kind == Tok::Int) {
            auto e = node(Expr::Lit);
            std::string d;
            for (char c : t.s)
                if (c != '_') d += c;
            e->lit = Value::integer(std::stoll(d));
            return e;
        }
        if (t.kind == Tok::Float) {
            auto e = node(Expr::Lit);
            e->lit = Value::number(std::stod(t.s));
            return e;
        }
        if (t.kind == Tok::Name) {
            auto e = node(Expr::Lit);
            if (t.s == "true" || t.s == "True") e->lit = Value::boolean(true);
            else if (t.s == "false" || t.s == "False") e->lit = Value::boolean(false);
            else if (t.s == "none" || t.s == "None") e->lit = Value::none();
            else e = node(Expr::Name, t.s);
            return e;
        }
        if (t.kind == Tok::Op && t.s == "(") {
            if (accept(")")) return node(Expr::MakeTuple);
            ExprP e = expr();
            if (accept(",")) {
                auto tu = node(Expr::MakeTuple);
                tu->args.push_back(e);
                while (!accept(")")) {
                    tu->args.push_back(expr());
                    if (!accept(",")) {
                        expect(")");
                        break;
                    }
                }
                return tu;
            }
            expect(")");
            return e;
        }
        if (t.kind == Tok::Op && t.s == "[") {
            auto l = node(Expr::MakeList);
            while (!accept("]")) {
                l->args.push_back(expr());
                if (!accept(",")) {
                    expect("]");
                    break;
                }
            }
            return l;
        }
        if (t.kind == Tok::Op && t.s == "{") {
            auto d = node(Expr::MakeDict);
            while (!accept("}")) {
                d->args.push_back(expr());
                expect(":");
                d->args.push_back(expr());
                if (!accept(",")) {
                    expect("}");
                    break;
                }
            }
            return d;
        }
        fail(t.line, "unexpected '" + (t.kind == Tok::End ? std::string("end of tag") : t.s) + "' in expression");
    }
    ExprP postfix(ExprP e) {
        for (;;) {
            if (accept(".")) {
                auto a = node(Expr::Attr, name_tok());
                a->args.push_back(e);
                e = a;
            } else if (accept("[")) {
                ExprP parts[3];
                int n = 0;
                bool slice = false;
                for (;;) {
                    if (peek().s != ":" && peek().s != "]") parts[n] = expr();
                    if (accept(":")) {
                        slice = true;
                        if (++n > 2) fail(peek().line, "bad slice");
                        continue;
                    }
                    expect("]");
                    break;
                }
                auto it = node(slice ? Expr::Slice : Expr::Item);
                it->args = {e, parts[0]};
                if (slice) it->args.push_back(parts[1]), it->args.push_back(parts[2]);
                e = it;
            } else if (accept("(")) {
                auto c = node(Expr::Call);
                c->args.push_back(e);
                call_args(c);
                e = c;
            } else {
                return e;
            }
        }
    }
    ExprP filters(ExprP e) {
        for (;;) {
            if (accept("|")) {
                auto f = node(Expr::Filter, name_tok());
                f->args.push_back(e);
                if (accept("(")) call_args(f);
                e = f;
            } else if (peek().kind == Tok::Name && peek().s == "is") {
                next();
                auto t = node(Expr::Test);
                t->negate = accept("not");
                t->name = name_tok();
                t->args.push_back(e);
                if (accept("(")) {
                    call_args(t);
                } else if (peek().kind == Tok::Str || peek().kind == Tok::Int || peek().kind == Tok::Float ||
                           (peek().kind == Tok::Name && peek().s != "and" && peek().s != "or" && peek().s != "else" &&
                            peek().s != "if")) {
                    t->args.push_back(primary());
                }
                e = t;
            } else {
                return e;
            }
        }
    }

    const std::string& src_;
    std::string name_;
    std::vector<Chunk> chunks_;
    std::vector<Tok> toks_;
    size_t tp_ = 0;
    int line_ = 1;
};

}  // namespace

NodeP parse(const std::string& source, const std::string& name) { return Parser(source, name).parse(); }

}  // namespace imp::jinja
