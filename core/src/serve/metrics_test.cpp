// Metrics: Prometheus text with cumulative histogram buckets and labelled request counts.
#include <catch2/catch.hpp>

#include "serve/metrics.h"

using imp::serve::Metrics;

TEST_CASE("metrics render counters and cumulative buckets and gauges", "[serve]") {
    Metrics m;
    m.request_done(200);
    m.request_done(200);
    m.request_done(400);
    m.tokens(10, 3);
    m.first_token(0.003);
    m.first_token(0.2);
    m.inter_token(0.02);
    m.gauges(2, 5, 7, 93);
    m.step(8, 8, 0.004, -1);     // all-decode step after idle time: no gap counted
    m.step(40, 8, 0.006, 0.001);  // mixed
    m.step(9, 9, 0.005, 0.0005);
    const std::string t = m.render();
    CHECK(t.find("imp_requests_total{status=\"200\"} 2\n") != std::string::npos);
    CHECK(t.find("imp_requests_total{status=\"400\"} 1\n") != std::string::npos);
    CHECK(t.find("imp_prompt_tokens_total 10\n") != std::string::npos);
    CHECK(t.find("imp_generation_tokens_total 3\n") != std::string::npos);
    CHECK(t.find("imp_time_to_first_token_seconds_bucket{le=\"0.001\"} 0\n") != std::string::npos);
    CHECK(t.find("imp_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n") != std::string::npos);
    CHECK(t.find("imp_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n") != std::string::npos);
    CHECK(t.find("imp_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
    CHECK(t.find("imp_time_to_first_token_seconds_count 2\n") != std::string::npos);
    CHECK(t.find("imp_inter_token_latency_seconds_bucket{le=\"0.025\"} 1\n") != std::string::npos);
    CHECK(t.find("imp_requests_running 2\n") != std::string::npos);
    CHECK(t.find("imp_requests_waiting 5\n") != std::string::npos);
    CHECK(t.find("imp_kv_blocks_used 7\n") != std::string::npos);
    CHECK(t.find("imp_kv_blocks_free 93\n") != std::string::npos);
    CHECK(t.find("imp_steps_total{kind=\"decode\"} 2\n") != std::string::npos);
    CHECK(t.find("imp_steps_total{kind=\"mixed\"} 1\n") != std::string::npos);
    CHECK(t.find("imp_step_rows_total 57\n") != std::string::npos);
    CHECK(t.find("imp_step_decode_rows_total 25\n") != std::string::npos);
    CHECK(t.find("imp_step_seconds_total 0.015\n") != std::string::npos);
    CHECK(t.find("imp_step_gaps_total 2\n") != std::string::npos);
    CHECK(t.find("imp_step_gap_seconds_total 0.0015\n") != std::string::npos);
}
