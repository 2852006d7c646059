#include "profile/toml_text_check.h"

#include <random>
#include <string>

#include <catch2/catch.hpp>

using imp::find_toml_unsafe_char;
using imp::toml_whitespace_table_undefined;

namespace {

std::string utf8(char32_t c) {
    std::string s;
    if (c < 0x80) {
        s += static_cast<char>(c);
    } else if (c < 0x800) {
        s += static_cast<char>(0xC0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        s += static_cast<char>(0xE0 | (c >> 12));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (c >> 18));
        s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
    }
    return s;
}

}  // namespace

TEST_CASE("toml text check: the code points toml++ 3.3's whitespace table leaves undefined", "[profile]") {
    // The three children whose only whitespace is tested before the switch, and the cases the switch has.
    for (char32_t c : {0xA0u, 0x3000u, 0xFEFFu, 0x1680u, 0x180Eu, 0x2000u, 0x200Bu, 0x202Fu, 0x205Fu, 0x2060u})
        CHECK_FALSE(toml_whitespace_table_undefined(c));
    for (char32_t c : {0xA1u, 0xE9u, 0x43Fu, 0x499u, 0x2C5Eu, 0x3001u, 0x3057u, 0xFB26u, 0xFEFEu})
        CHECK(toml_whitespace_table_undefined(c));
    for (char32_t c : {0x9Fu, 0x49Au, 0x2C5Du, 0x3058u, 0x4E2Du, 0xFB25u, 0xFF00u, 0x1F600u, 0x41u})
        CHECK_FALSE(toml_whitespace_table_undefined(c));
}

TEST_CASE("toml text check: non-ASCII outside strings and comments is found with line and column", "[profile]") {
    auto bad = find_toml_unsafe_char("[generate]\nprompt = \xC3\xA9t\xC3\xA9\n");
    REQUIRE(bad);
    CHECK(bad->line == 2);
    CHECK(bad->column == 10);
    CHECK(bad->code_point == 0xE9);
    CHECK(bad->message == "non-ASCII character U+00E9 outside a string or comment (TOML allows it only between quotes)");

    // Any non-ASCII character there, not only the undefined ones (TOML 1.0 allows none); columns count code points.
    bad = find_toml_unsafe_char("# caf\xC3\xA9\n[\xE4\xB8\xAD]\n");
    REQUIRE(bad);
    CHECK(bad->line == 2);
    CHECK(bad->column == 2);
    CHECK(bad->code_point == 0x4E2D);
    bad = find_toml_unsafe_char("a = \"\xC3\xA9\" \xC3\xA9");
    REQUIRE(bad);
    CHECK(bad->column == 9);
}

TEST_CASE("toml text check: strings, comments and quoted keys may hold any character", "[profile]") {
    CHECK_FALSE(find_toml_unsafe_char(""));
    CHECK_FALSE(find_toml_unsafe_char("[generate] # r\xC3\xA9sum\xC3\xA9\nsystem = \"R\xC3\xA9ponds en fran\xC3\xA7" "ais\"\n"));
    CHECK_FALSE(find_toml_unsafe_char("a = '\xC3\xA9\\'\nb = \"\\\"\xC3\xA9\"\n"));
    CHECK_FALSE(find_toml_unsafe_char("\"\xC3\xA9\" = 1\n'\xC3\xA9' = 2\n"));
    CHECK_FALSE(find_toml_unsafe_char("a = \"\"\"\n\xC3\xA9\n\"\"\"\nb = '''\\\n\xC3\xA9'''\n"));
    // Up to two quotes before the closing three are the string's.
    CHECK_FALSE(find_toml_unsafe_char("a = \"\"\"x\"\"\"\"\"\nb = '''x'''''\nc = 1\n"));
    CHECK(find_toml_unsafe_char("a = \"\"\"x\"\"\"\"\"\nb = \xC3\xA9\n"));
    // An unterminated string ends at the line's end: what follows is outside it again.
    CHECK(find_toml_unsafe_char("a = \"x\nb = \xC3\xA9\n"));
    // Malformed UTF-8 is toml++'s to report.
    CHECK_FALSE(find_toml_unsafe_char("a = \xFF\xC3\n"));
}

TEST_CASE("toml text check: a bare value is read to its terminator, quotes included", "[profile]") {
    // toml++ reads a number, boolean or date up to a space, line break, ']', '}', ',' or '#', asking of every
    // character whether it is one: a quote inside does not open a string.
    for (const char* t : {"a = 1\"\xC3\xA9\"\n", "a = -'\xC3\xA9'\n", "a = [1\"\"\"\xC3\xA9\"\"\"]\n",
                          "t = {b = 1\"\xC3\xA9\"}\n", "d = 1979-05-27 07:32\"\xC3\xA9\"\n", "a = [1, 2.\"\xC3\xA9\"]\n",
                          "a = true\"\xC3\xA9\"\n", "a = 1=\"\xC3\xA9\"\n"}) {
        INFO(t);
        const auto bad = find_toml_unsafe_char(t);
        REQUIRE(bad);
        CHECK(bad->code_point == 0xE9);
        CHECK(bad->message.find("outside a string or comment") != std::string::npos);
    }
    // Strings where TOML has them: values, array elements, inline tables, quoted keys (also after a bare segment),
    // table headers; after a value and a space, a quote ends toml++'s reading with an error before it asks anything.
    for (const char* t : {"a = \"\xC3\xA9\"\n", "a.\"\xC3\xA9\" = 1\n", "[a.\"\xC3\xA9\"]\n", "x = [ \"\xC3\xA9\", '\xC3\xA9' ]\n",
                          "t = { k = \"\xC3\xA9\", \"\xC3\xA9\" = 1 }\n", "x = [\n  1,\n  \"\xC3\xA9\",\n]\n",
                          "d = 1979-05-27 07:32:00 # \xC3\xA9\n", "a = 1 \"\xC3\xA9\"\n", "a = 1\nb = \"\xC3\xA9\"\n"}) {
        INFO(t);
        CHECK_FALSE(find_toml_unsafe_char(t));
    }
}

TEST_CASE("toml text check: a byte order mark at the start is skipped, as toml++ does", "[profile]") {
    CHECK_FALSE(find_toml_unsafe_char("\xEF\xBB\xBF" "a = 1\n"));
    const auto bad = find_toml_unsafe_char("\xEF\xBB\xBF" "a = \xC3\xA9\n");
    REQUIRE(bad);
    CHECK(bad->column == 5);
    CHECK(find_toml_unsafe_char("a = 1\n\xEF\xBB\xBF"));  // elsewhere it is a character like any other
}

TEST_CASE("toml text check: after a backslash in a multi-line basic string", "[profile]") {
    // The escaped character itself, and the first one after a line-ending backslash, when the table is undefined.
    auto bad = find_toml_unsafe_char("a = \"\"\"x\\\xC3\xA9\"\"\"\n");
    REQUIRE(bad);
    CHECK(bad->column == 10);
    CHECK(bad->message.find("U+00E9 after a backslash in a multi-line string") == 0);
    bad = find_toml_unsafe_char("a = \"\"\"x \\  \n\n   \xD0\x96\"\"\"\n");
    REQUIRE(bad);
    CHECK(bad->line == 3);
    CHECK(bad->column == 4);
    CHECK(bad->code_point == 0x416);
    CHECK(find_toml_unsafe_char("a = \"\"\"\\ \xC3\xA9\"\"\"\n"));
    // toml++ skips what its table calls whitespace (U+00A0, U+3000) as well, and asks again of what follows.
    bad = find_toml_unsafe_char("a = \"\"\"\\\n\xC2\xA0\xC3\xA9\"\"\"\n");
    REQUIRE(bad);
    CHECK(bad->code_point == 0xE9);
    bad = find_toml_unsafe_char("a = \"\"\"x\\\n\xE3\x80\x80\xE3\x81\x81\"\"\"\n");
    REQUIRE(bad);
    CHECK(bad->code_point == 0x3041);
    CHECK(find_toml_unsafe_char("a = \"\"\"\\\xC2\xA0\xC3\xA9\"\"\"\n"));
    // Defined there: left to toml++.
    CHECK_FALSE(find_toml_unsafe_char("a = \"\"\"x\\\n  \xE4\xB8\xAD\"\"\"\n"));
    CHECK_FALSE(find_toml_unsafe_char("a = \"\"\"x\\n\xC3\xA9\\\"\xC3\xA9\"\"\"\n"));
}

TEST_CASE("toml text check: random text outside strings is found exactly when it is non-ASCII", "[profile]") {
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<uint32_t> pick(0x20, 0x2FFFF);
    for (int t = 0; t < 500; ++t) {
        char32_t c = pick(rng);
        if (c >= 0xD800 && c < 0xE000) c = 0x4E00;
        if (c == U'"' || c == U'\'' || c == U'#' || c == 0x7F) c = U'x';
        INFO("U+" << std::hex << static_cast<uint32_t>(c));
        const std::string value = "v = " + utf8(c) + "\n";
        CHECK(find_toml_unsafe_char(value).has_value() == (c >= 0x80));
        CHECK_FALSE(find_toml_unsafe_char("v = \"" + utf8(c) + "\"\n"));
        CHECK(find_toml_unsafe_char("v = \"\"\"\\\n " + utf8(c) + "\"\"\"\n").has_value() ==
              toml_whitespace_table_undefined(c));
    }
}
