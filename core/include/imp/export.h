// imp SDK: IMP_API marks what libimp_core.so exports. The core is built with hidden visibility, so a class or
// function is visible to plugins (and to the imp CLI and the core's tests) only when it is declared IMP_API.
// Pure interfaces (Layer, Executor, QuantFormat, Weight, Arch, ...) need no mark: they have no code in the core.
// On ELF the same attribute serves the library that defines a symbol and the modules that use it.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define IMP_API __attribute__((visibility("default")))
#else
#define IMP_API
#endif
