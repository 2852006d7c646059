#include <catch2/catch.hpp>

#include <cmath>

#include "imp/error.h"
#include "model/json.h"

using imp::json::parse;
using imp::json::Value;
using Kind = imp::json::Value::Kind;

namespace {
Value p(const std::string& s) { return parse(s, "t.json"); }
std::string err(const std::string& s, imp::json::Limits lim = {}) {
    try {
        parse(s, "t.json", lim);
    } catch (const imp::Error& e) {
        return e.what();
    }
    return "(accepted)";
}
}  // namespace

TEST_CASE("model json: scalars keep integer and float apart", "[model][json]") {
    CHECK(p("0").kind == Kind::Int);
    CHECK(p("-0").kind == Kind::Int);
    CHECK(p("12345678901234").i == 12345678901234LL);
    CHECK(p("-9223372036854775808").i == INT64_MIN);
    Value u = p("18446744073709551615");
    CHECK(u.kind == Kind::UInt);
    CHECK(u.u == UINT64_MAX);
    Value big = p("18446744073709551616");  // past uint64: becomes a float
    CHECK(big.kind == Kind::Float);
    CHECK(big.f == 18446744073709551616.0);
    CHECK(p("1.0").kind == Kind::Float);
    CHECK(p("1e-05").f == 1e-05);
    CHECK(p("6.02E+23").f == 6.02e23);
    CHECK(p("-0.5").f == -0.5);
    CHECK(p("true").b);
    CHECK_FALSE(p(" false ").b);
    CHECK(p("null").kind == Kind::Null);
    uint64_t x = 0;
    CHECK(p("7").as_u64(x));
    CHECK(x == 7);
    CHECK_FALSE(p("-7").as_u64(x));
    CHECK_FALSE(p("7.0").as_u64(x));
}

TEST_CASE("model json: strings decode every escape and validate UTF-8 (nlohmann-json)", "[model][json]") {
    CHECK(p(R"("a\"b\\c\/d\be\ff\ng\rh\ti")").s == "a\"b\\c/d\be\ff\ng\rh\ti");
    CHECK(p(R"("\u00e9\u20AC")").s == "\xC3\xA9\xE2\x82\xAC");
    CHECK(p(R"("\ud83d\ude00")").s == "\xF0\x9F\x98\x80");
    CHECK(p(R"("\u0000")").s == std::string(1, '\0'));
    CHECK(p("\"\xC3\xA9\xF0\x9F\x98\x80\"").s == "\xC3\xA9\xF0\x9F\x98\x80");
    CHECK_THAT(err(R"("\ud83d")"), Catch::Contains("high surrogate not followed by a low surrogate"));
    CHECK_THAT(err(R"("\ude00")"), Catch::Contains("lone low surrogate"));
    CHECK_THAT(err(R"("\ud83d\u0041")"), Catch::Contains("high surrogate not followed"));
    CHECK_THAT(err(R"("\x")"), Catch::Contains("invalid escape"));
    CHECK_THAT(err(R"("\u12G4")"), Catch::Contains("invalid hex digit"));
    CHECK_THAT(err(R"("\u12)"), Catch::Contains("invalid hex digit in \\u escape"));
    CHECK_THAT(err("\"a\tb\""), Catch::Contains("control character"));
    CHECK_THAT(err("\"abc"), Catch::Contains("unterminated string"));
    CHECK_THAT(err("\"\xC0\xAF\""), Catch::Contains("invalid UTF-8 byte"));  // overlong '/'
    CHECK_THAT(err("\"\xE0\x80\xAF\""), Catch::Contains("invalid UTF-8 byte"));        // overlong 3-byte
    CHECK_THAT(err("\"\xED\xA0\x80\""), Catch::Contains("invalid UTF-8 byte"));
    CHECK_THAT(err("\"\xF4\x90\x80\x80\""), Catch::Contains("invalid UTF-8 byte"));
    CHECK_THAT(err("\"\xC3\""), Catch::Contains("invalid UTF-8 byte"));
    CHECK_THAT(err("\"\xF0\x9F\""), Catch::Contains("invalid UTF-8 byte"));
}

TEST_CASE("model json: objects keep order and reject duplicates", "[model][json]") {
    Value v = p(R"( {"b": 1, "a": [1, 2.5, "x", null, {"k": []}], "c": {}} )");
    REQUIRE(v.is_object());
    REQUIRE(v.keys == std::vector<std::string>{"b", "a", "c"});
    CHECK(v.get("b")->i == 1);
    CHECK(v.get("a")->items.size() == 5);
    CHECK(v.get("a")->items[4].get("k")->is_array());
    CHECK(v.get("zz") == nullptr);
    CHECK(imp::json::dump(v) == R"({"b":1,"a":[1,2.5,"x",null,{"k":[]}],"c":{}})");
    CHECK_THAT(err(R"({"a":1,"a":2})"), Catch::Contains("duplicate key \"a\""));
}

TEST_CASE("model json: strict grammar", "[model][json]") {
    for (const char* bad :
         {"",  " ",  "{",  "[1,]", "[1 2]",    "{\"a\" 1}", "{\"a\":1,}", "{a:1}", "01",    "1.",  ".5",
          "-", "1e", "+1", "NaN",  "Infinity", "tru",       "nul",        "[1]]",  "{} {}", "'a'", "1e999"}) {
        INFO("input: " << bad);
        std::string m = err(bad);
        CHECK_THAT(m, Catch::StartsWith("t.json: invalid JSON: "));
        CHECK_THAT(m, Catch::Contains(" at byte "));
    }
    CHECK_THAT(err("[1] x"), Catch::Contains("unexpected trailing characters"));
    CHECK_THAT(err("1e999"), Catch::Contains("number out of range"));
}

TEST_CASE("model json: depth and size limits", "[model][json]") {
    CHECK_NOTHROW(p(std::string(64, '[') + std::string(64, ']')));
    CHECK_THAT(err(std::string(65, '[') + std::string(65, ']')), Catch::Contains("nesting deeper than 64 levels"));
    CHECK_THAT(err(std::string(100000, '[')), Catch::Contains("nesting deeper"));  // no stack overflow
    imp::json::Limits lim;
    lim.max_values = 10;
    CHECK_THAT(err("[1,2,3,4,5,6,7,8,9,10]", lim), Catch::Contains("more than 10 values"));
}
