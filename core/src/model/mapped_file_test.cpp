// MappedFile::open and read_regular_file: a procfs file, which says 0 bytes in stat, is read to its end; an empty
// file is empty; a FIFO is refused without waiting for a writer.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

#include "imp/error.h"
#include "model/mapped_file.h"
#include "model/reader_test_util.h"

TEST_CASE("mapped file: a procfs file that says 0 bytes is read to its end", "[model]") {
    struct stat st {};
    REQUIRE(::stat("/proc/self/status", &st) == 0);
    REQUIRE(st.st_size == 0);  // what the reader must not trust
    auto f = imp::MappedFile::open("/proc/self/status");
    REQUIRE(f->size() > 0);
    const std::string text(reinterpret_cast<const char*>(f->data()), size_t(f->size()));
    CHECK(text.rfind("Name:", 0) == 0);
    CHECK(imp::read_regular_file("/proc/self/status").rfind("Name:", 0) == 0);
}

TEST_CASE("mapped file: an empty file is empty, a FIFO is refused", "[model]") {
    imp::test::TempDir d("mapped");
    const std::string empty = d.file("empty.txt", "");
    CHECK(imp::MappedFile::open(empty)->size() == 0);
    CHECK(imp::read_regular_file(empty).empty());
    const std::string fifo = (d.dir / "fifo").string();
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(imp::read_regular_file(fifo), fifo + ": not a regular file");
}
