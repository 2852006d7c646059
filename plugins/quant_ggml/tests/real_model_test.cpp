// The real SmolLM2-135M-Instruct Q4_1 GGUF (models/, not committed; the test warns and passes when it is absent):
// weights read through the core's GGUF reader, loaded on the CpuExecutor; get_rows equals gguf-py's dequantization
// of the same rows (fixtures/smollm2_rows.*, written by make_fixtures.py) bit for bit, and matmul on a real Q4_1
// and the Q8_0 embedding matches a double dot.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "ggml_format.h"
#include "imp/model.h"
#include "request_util.h"

namespace {

const std::string kModel = std::string(IMP_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kFixtures = std::string(IMP_SOURCE_DIR) + "/plugins/quant_ggml/tests/fixtures/";

std::unique_ptr<imp::Weight> load(const imp::ModelSource& m, const std::string& name, imp::Executor& ex) {
    imp::WeightSource src;
    src.main = &m.get(name);
    imp::ggml::GgmlFormat f;
    const imp::WeightRequest req = imp::ggml::test::request_for(src);
    REQUIRE(f.plan(req, ex).accepted);
    return f.load(req, ex);
}

}  // namespace

TEST_CASE("quant_ggml: real SmolLM2 rows equal gguf-py, matmul on real weights", "[quant_ggml][real]") {
    {
        INFO(kModel << " is fetched by scripts/fetch-model (scripts/test runs it first)");
        REQUIRE(std::filesystem::exists(kModel));
    }
    auto model = imp::open_model(kModel);
    imp::CpuExecutor ex(2);

    std::ifstream list(kFixtures + "smollm2_rows.txt");
    std::ifstream values(kFixtures + "smollm2_rows.f32", std::ios::binary);
    REQUIRE(list);
    REQUIRE(values);
    std::string line;
    int n_rows = 0;
    while (std::getline(list, line)) {
        std::istringstream ls(line);
        std::string name;
        int32_t row = 0;
        int64_t cols = 0;
        ls >> name >> row >> cols;
        std::vector<float> expected(static_cast<size_t>(cols)), got(static_cast<size_t>(cols));
        values.read(reinterpret_cast<char*>(expected.data()), std::streamsize(cols * 4));
        REQUIRE(values);
        const auto w = load(*model, name, ex);
        REQUIRE(w->cols() == cols);
        w->get_rows(ex, &row, 1, got.data());
        INFO(name << " row " << row);
        CHECK(std::memcmp(got.data(), expected.data(), size_t(cols) * 4) == 0);
        ++n_rows;
    }
    CHECK(n_rows == 8);

    std::mt19937 rng(17);
    std::normal_distribution<float> nd;
    for (const char* name : {"blk.0.ffn_down.weight", "blk.5.attn_v.weight", "token_embd.weight"}) {
        const auto w = load(*model, name, ex);
        const int64_t rows = w->rows(), cols = w->cols();
        std::vector<float> x(static_cast<size_t>(2 * cols)), y(static_cast<size_t>(2 * rows));
        for (auto& v : x) v = nd(rng);
        w->matmul(ex, x.data(), cols, y.data(), rows, 2, false);
        std::vector<float> wrow(static_cast<size_t>(cols));
        int64_t bad = 0;
        for (int32_t r = 0; r < rows; r += (rows > 4096 ? 97 : 1)) {
            w->get_rows(ex, &r, 1, wrow.data());
            for (int t = 0; t < 2; ++t) {
                double ref = 0, mag = 0;
                for (int64_t c = 0; c < cols; ++c) {
                    ref += double(wrow[size_t(c)]) * x[size_t(t * cols + c)];
                    mag += std::fabs(double(wrow[size_t(c)]) * x[size_t(t * cols + c)]);
                }
                if (!(std::fabs(y[size_t(t * rows + r)] - ref) <= 1e-5 * mag)) ++bad;
            }
        }
        INFO(name << " " << w->type() << " [" << rows << ", " << cols << "]");
        CHECK(bad == 0);
    }
}
