#include "model/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "imp/error.h"

namespace imp {

namespace {
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};
[[noreturn]] void fail(const std::string& path, const char* what, int err) {
    if (err == ENOENT) throw Error(path + ": no such file or directory");
    throw Error(path + ": " + what + ": " + std::strerror(err));
}
void check_regular(const std::string& path, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected a file");
    if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
}
// The bytes of a regular file read up to its end (a procfs or sysfs file says 0 bytes and has content).
std::string read_to_end(int fd, const std::string& path) {
    std::string out;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(path, "cannot read", errno);
        if (n == 0) return out;
        out.append(buf, size_t(n));
    }
}
}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
    // A FIFO or device would block open() or read forever: stat first, and open with O_NONBLOCK so a file swapped
    // for one between the two calls still returns at once (fstat then refuses it).
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail(path, "cannot stat", errno);
    check_regular(path, st);
    Fd f;
    f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f.fd < 0) fail(path, "cannot open", errno);
    if (::fstat(f.fd, &st) != 0) fail(path, "cannot stat", errno);
    check_regular(path, st);
    std::shared_ptr<MappedFile> m(new MappedFile());
    m->path_ = path;
    m->size_ = uint64_t(st.st_size);
    if (m->size_ == 0) {  // empty (readers report it as truncated), or a procfs file that does not tell its size
        m->owned_ = read_to_end(f.fd, path);
        m->size_ = m->owned_.size();
        m->data_ = m->size_ ? reinterpret_cast<const uint8_t*>(m->owned_.data()) : nullptr;
        return m;
    }
    if (m->size_ > uint64_t(SIZE_MAX)) throw Error(path + ": file too large to map");
    void* p = ::mmap(nullptr, size_t(m->size_), PROT_READ, MAP_PRIVATE, f.fd, 0);
    if (p == MAP_FAILED) fail(path, "cannot map", errno);
    m->data_ = static_cast<const uint8_t*>(p);
    m->mapped_ = true;
    return m;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(const std::string& path, std::string bytes) {
    std::shared_ptr<MappedFile> m(new MappedFile());
    m->path_ = path;
    m->owned_ = std::move(bytes);
    m->size_ = m->owned_.size();
    m->data_ = m->size_ ? reinterpret_cast<const uint8_t*>(m->owned_.data()) : nullptr;
    return m;
}

std::string read_regular_file(const std::string& path) {
    auto f = MappedFile::open(path);
    return f->size() ? std::string(reinterpret_cast<const char*>(f->data()), size_t(f->size())) : std::string();
}

MappedFile::~MappedFile() {
    if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_t(size_));
}

}  // namespace imp
