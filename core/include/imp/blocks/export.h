// imp SDK blocks: the export mark of the blocks' functions (they live in libimp_core). Uses imp/export.h where the
// SDK has it; until then the same attribute, so the blocks stay visible once libimp_core is built with hidden
// visibility.
#pragma once
#if __has_include("imp/export.h")
#include "imp/export.h"
#endif
#ifndef IMP_API
#if defined(__GNUC__) || defined(__clang__)
#define IMP_API __attribute__((visibility("default")))
#else
#define IMP_API
#endif
#endif
