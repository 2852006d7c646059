#include <cstdio>

#include "imp/config.h"

int main() {
    std::printf("imp %s\n", IMP_SDK_VERSION);
    return 0;
}
