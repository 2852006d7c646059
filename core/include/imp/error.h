// imp SDK: the error type. Every failure the user can cause (bad file, bad profile, missing plugin,
// out of memory, context overflow) is an imp::Error whose what() is one line naming the file/key/size.
#pragma once
#include <stdexcept>
#include <string>

namespace imp {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Checked arithmetic for sizes read from files: throws imp::Error(what + ": overflow") on overflow.
[[nodiscard]] inline unsigned long long checked_mul(unsigned long long a, unsigned long long b, const char* what) {
    unsigned long long r;
    if (__builtin_mul_overflow(a, b, &r)) throw Error(std::string(what) + ": size overflows 64 bits");
    return r;
}
[[nodiscard]] inline unsigned long long checked_add(unsigned long long a, unsigned long long b, const char* what) {
    unsigned long long r;
    if (__builtin_add_overflow(a, b, &r)) throw Error(std::string(what) + ": size overflows 64 bits");
    return r;
}

}  // namespace imp
