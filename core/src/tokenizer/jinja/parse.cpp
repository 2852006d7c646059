// Jinja parser: the chunks and tokens of lexer.h -> Node tree (statements: if / for / set / macro / break /
// continue / generation; expressions with Jinja2's precedence, filters, tests, slices, calls).
#include "tokenizer/jinja/parse.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

#include "imp/error.h"
#include "tokenizer/jinja/lexer.h"

namespace imp::jinja {

namespace {

class Parser {
public:
    Parser(const std::string& src, const std::string& name) : src_(src), name_(name) {}

    NodeP parse() {
        chunks_ = split_template(src_, name_);
        size_t pos = 0;
        NodeP root = body(pos, {});
        if (pos < chunks_.size()) fail(chunks_[pos].line, "unexpected '" + first_word(chunks_[pos].body) + "'");
        return root;
    }

private:
    [[noreturn]] void fail(int line, const std::string& what) const {
        throw Error(name_ + ":" + std::to_string(line) + ": " + what);
    }
    // One level of the parser's recursion (a block, a bracketed or unary sub-expression) while it lives.
    struct Nest {
        Parser& p;
        Nest(Parser& parser, int line) : p(parser) {
            if (++p.nest_ > kMaxParseNest)
                p.fail(line, "the template nests deeper than imp's limit of " + std::to_string(kMaxParseNest));
        }
        ~Nest() { --p.nest_; }
        Nest(const Nest&) = delete;
        Nest& operator=(const Nest&) = delete;
    };
    // e with its children in place: its height, which may not pass kMaxParseNest (chains grow without recursion).
    ExprP grown(ExprP e) {
        int d = 0;
        for (const ExprP& a : e->args)
            if (a) d = std::max(d, a->depth);
        for (const auto& kv : e->kwargs)
            if (kv.second) d = std::max(d, kv.second->depth);
        e->depth = d + 1;
        if (e->depth > kMaxParseNest)
            fail(e->line, "an expression nests deeper than imp's limit of " + std::to_string(kMaxParseNest));
        return e;
    }
    // --- statements ---
    NodeP body(size_t& pos, const std::vector<std::string>& stop) {
        const int line = pos < chunks_.size() ? chunks_[pos].line : chunks_.empty() ? 1 : chunks_.back().line;
        const Nest nest(*this, line);
        auto seq = std::make_shared<Node>();
        seq->kind = Node::Seq;
        seq->line = line;  // where its steps are counted (a loop body's iterations)
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
            if (accept("if"))
                n->exprs.push_back(or_expr(true));
            else
                n->exprs.push_back(nullptr);
            if (peek().kind == Tok::Name && peek().s == "recursive")
                fail(line, "unsupported construct 'recursive' loop");
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

    void lex(const std::string& s, int line) {
        toks_ = lex_tag(s, line, name_);
        tp_ = 0;
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
        return grown(t);
    }
    ExprP expr() {
        const Nest nest(*this, peek().line);
        ExprP e = or_expr(false);
        if (accept("if")) {
            auto c = node(Expr::Cond);
            c->args.push_back(or_expr(false));
            c->args.push_back(e);
            c->args.push_back(accept("else") ? expr() : nullptr);
            return grown(c);
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
            const Nest nest(*this, next().line);
            auto u = node(Expr::Unary, "not");
            u->args.push_back(not_expr());
            return grown(u);
        }
        return compare();
    }
    ExprP compare() {
        ExprP l = math1();
        for (;;) {
            const Tok& t = peek();
            if (t.kind == Tok::Op &&
                (t.s == "==" || t.s == "!=" || t.s == "<" || t.s == ">" || t.s == "<=" || t.s == ">=")) {
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
            const Nest nest(*this, peek().line);
            auto u = node(Expr::Unary, next().s);
            u->args.push_back(unary());
            return filters(grown(u));
        }
        return filters(postfix(primary()));
    }
    ExprP bin(const std::string& op, ExprP l, ExprP r) {
        auto b = node(Expr::Binary, op);
        b->args = {l, r};
        return grown(b);
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
            try {
                e->lit = Value::integer(std::stoll(d));
            } catch (const std::out_of_range&) {  // found by fuzz/chat_template_fuzz.cpp
                fail(e->line, "integer literal " + d.substr(0, 40) + (d.size() > 40 ? "..." : "") + " is out of range");
            }
            return e;
        }
        if (t.kind == Tok::Float) {
            auto e = node(Expr::Lit);
            std::string d;
            for (char c : t.s)
                if (c != '_') d += c;
            // As Python's float(): past the largest double is inf, below the smallest a subnormal or 0.
            e->lit = Value::number(std::strtod(d.c_str(), nullptr));
            return e;
        }
        if (t.kind == Tok::Name) {
            auto e = node(Expr::Lit);
            if (t.s == "true" || t.s == "True")
                e->lit = Value::boolean(true);
            else if (t.s == "false" || t.s == "False")
                e->lit = Value::boolean(false);
            else if (t.s == "none" || t.s == "None")
                e->lit = Value::none();
            else
                e = node(Expr::Name, t.s);
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
                return grown(tu);
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
            return grown(l);
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
            return grown(d);
        }
        fail(t.line, "unexpected '" + (t.kind == Tok::End ? std::string("end of tag") : t.s) + "' in expression");
    }
    ExprP postfix(ExprP e) {
        for (;;) {
            if (accept(".")) {
                auto a = node(Expr::Attr, name_tok());
                a->args.push_back(e);
                e = grown(a);
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
                e = grown(it);
            } else if (accept("(")) {
                auto c = node(Expr::Call);
                c->args.push_back(e);
                call_args(c);
                e = grown(c);
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
                e = grown(f);
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
                e = grown(t);
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
    int nest_ = 0;  // Nest levels alive
};

}  // namespace

NodeP parse(const std::string& source, const std::string& name) { return Parser(source, name).parse(); }

}  // namespace imp::jinja
