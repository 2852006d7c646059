// StopMatcher: held-back prefixes, cuts at the earliest stop string, flush at the end.
#include <catch2/catch.hpp>

#include "serve/stop_matcher.h"

using imp::serve::StopMatcher;

TEST_CASE("stop matcher holds back a possible stop prefix and cuts at the match", "[serve]") {
    StopMatcher m({"END", "\n\n"});
    CHECK(m.push("Hello E") == "Hello ");  // "E" may start END
    CHECK(m.push("N") == "");
    CHECK(m.push("D and more") == "");
    CHECK(m.stopped());
    CHECK(m.push("x") == "");
    CHECK(m.flush() == "");
}

TEST_CASE("stop matcher releases a held prefix that does not continue and flushes the rest", "[serve]") {
    StopMatcher m({"END"});
    CHECK(m.push("EN") == "");
    CHECK(m.push("x") == "ENx");
    CHECK(m.push("ab E") == "ab ");
    CHECK(!m.stopped());
    CHECK(m.flush() == "E");
}

TEST_CASE("stop matcher: the earliest stop string wins within one piece", "[serve]") {
    StopMatcher m({"cd", "b"});
    CHECK(m.push("abcd") == "a");
    CHECK(m.stopped());
}

TEST_CASE("stop matcher without stop strings passes everything", "[serve]") {
    StopMatcher m({});
    CHECK(m.push("abc") == "abc");
    CHECK(m.flush() == "");
}
