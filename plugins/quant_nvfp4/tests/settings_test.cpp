// quant_nvfp4's kernel settings as a profile gives them: defaults, gemv_int8_warps' values, the errors that name it.
#include <catch2/catch.hpp>

#include "nvfp4_settings.h"

#ifdef IMP_NVFP4_HAVE_CUDA
TEST_CASE("nvfp4 settings: gemv_int8_warps", "[nvfp4][settings]") {
    imp::Registry reg;
    reg.set_current_plugin("quant_nvfp4");
    imp::nvfp4::declare_nvfp4_settings(reg);
    const auto d = imp::nvfp4::cuda_settings(&reg.settings("quant_nvfp4"));
    CHECK(d.gemv_int8_warps == 0);  // from the width of x
    CHECK(d.gemv_int8_x == 2);      // "all"
    for (const int64_t w : {8, 16, 32}) {
        reg.configure("quant_nvfp4", "gemv_int8_warps", w);
        CHECK(imp::nvfp4::cuda_settings(&reg.settings("quant_nvfp4")).gemv_int8_warps == w);
    }
    CHECK_THROWS_WITH(reg.configure("quant_nvfp4", "gemv_int8_warps", int64_t(64)), Catch::Contains("gemv_int8_warps"));
    CHECK_THROWS_WITH(reg.configure("quant_nvfp4", "gemv_int8_warps", std::string("16")),
                      Catch::Contains("gemv_int8_warps"));
    reg.configure("quant_nvfp4", "gemv_int8_warps", int64_t(12));
    CHECK_THROWS_WITH(imp::nvfp4::cuda_settings(&reg.settings("quant_nvfp4")),
                      Catch::Contains("[plugin.quant_nvfp4] gemv_int8_warps = 12") && Catch::Contains("8, 16 or 32"));
}
#endif
