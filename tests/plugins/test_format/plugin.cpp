// test_format plugin entry: registers the "packed4" test QuantFormat (packed_format.h).
#include <memory>

#include "imp/abi.h"
#include "imp/registry.h"
#include "packed_format.h"

namespace {

void register_test_format(imp::Registry& r) { r.add_format(std::make_unique<imp::testfmt::PackedFormat>()); }

}  // namespace

IMP_PLUGIN(imp::PluginKind::Quant, "test_format", "1.0.0", "format:U8+F8_E4M3+F32", register_test_format)
